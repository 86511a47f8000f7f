"""RPM episodes (program/episodes.py): starting one with its consent, billing practitioner,
conditions and devices; ending one; one open episode and no overlap per patient, under the
patient's lock and the database's index."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, transaction

from monitoring.auth import register_device, revoke_device
from monitoring.models import Device
from program.episodes import (
    ICD10_CM_FORMAT,
    EpisodeConflict,
    InvalidEpisode,
    end_episode,
    start_episode,
)
from program.models import Episode, PatientNote, Review, TimeEntry
from tests.factories import MembershipFactory, PatientFactory, UserFactory
from tests.program.factories import (
    EpisodeFactory,
    PatientNoteFactory,
    ReviewFactory,
    TimeEntryFactory,
)

pytestmark = pytest.mark.django_db

# 11:00 in New York (EDT; the `patient` fixture's zone), 2026-03-10.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def start(patient, user, **overrides):
    fields = {
        "start": date(2026, 3, 2),
        "consent_at": datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
        "consent_method": "written",
        "billing_practitioner": "physician",
        "conditions": ["I10"],
        "devices": [],
    }
    return start_episode(patient=patient, user=user, **(fields | overrides))


def reasons(call) -> dict:
    with pytest.raises(InvalidEpisode) as raised:
        call()
    return raised.value.errors


# --- Starting -------------------------------------------------------------------------------


def test_an_episode_starts_with_its_consent_practitioner_conditions_and_devices(
    patient, physician, coordinator
):
    device, _ = register_device(patient=patient, kind="bp_monitor", serial="BP-1")

    episode = start(
        patient, coordinator, conditions=[" i10 ", "E11.9", "Z79.01"], devices=[device.pk]
    )

    stored = Episode.objects.get()
    assert stored.pk == episode.pk
    assert (stored.patient_id, stored.start, stored.end) == (patient.pk, date(2026, 3, 2), None)
    assert stored.consent_at == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert stored.consent_method == "written"
    assert stored.billing_practitioner_id == physician.pk
    assert stored.conditions == ["I10", "E11.9", "Z79.01"]
    assert list(stored.devices.all()) == [device]
    assert (stored.created_by_id, stored.ended_by_id) == (coordinator.pk, None)
    assert stored.has_consent


def test_an_episode_may_start_today_in_the_patients_zone_not_tomorrow(
    patient, physician, coordinator, time_machine
):
    # 02:00 UTC on the 11th is still the 10th, 22:00, in New York.
    time_machine.move_to(datetime(2026, 3, 11, 2, 0, tzinfo=UTC), tick=False)

    errors = reasons(lambda: start(patient, coordinator, start=date(2026, 3, 11)))

    assert errors == {
        "start": [
            "Is after today (2026-03-10, the patient's time zone): an episode starts on the "
            "day monitoring begins, not ahead of it."
        ]
    }
    assert start(patient, coordinator, start=date(2026, 3, 10)).start == date(2026, 3, 10)


@pytest.mark.parametrize(
    ("consent_at", "reason"),
    [
        (None, "When the patient consented is required."),
        (datetime(2026, 3, 10, 15, 5, 1, tzinfo=UTC), "Is in the future."),
        (
            # 2026-03-03 00:30 in New York: the day after the start.
            datetime(2026, 3, 3, 5, 30, tzinfo=UTC),
            "Is after the episode's start day: consent is given by the time monitoring "
            "begins. Start the episode on the day of consent or later.",
        ),
    ],
)
def test_consent_is_given_by_the_start_day_and_not_in_the_future(
    patient, physician, coordinator, consent_at, reason
):
    errors = reasons(lambda: start(patient, coordinator, consent_at=consent_at))

    assert errors == {"consent_at": [reason]}
    assert Episode.objects.count() == 0


def test_consent_late_on_the_start_day_in_the_patients_zone_is_in_time(
    patient, physician, coordinator
):
    # 23:30 on 2026-03-02 in New York is already the 3rd in UTC.
    episode = start(patient, coordinator, consent_at=datetime(2026, 3, 3, 4, 30, tzinfo=UTC))

    assert episode.consent_at == datetime(2026, 3, 3, 4, 30, tzinfo=UTC)


def test_the_consent_method_is_one_of_the_three(patient, physician, coordinator):
    errors = reasons(lambda: start(patient, coordinator, consent_method="implied"))

    assert errors == {"consent_method": ["One of: verbal, written, electronic."]}


@pytest.mark.parametrize("who", ["nurse", "coordinator", "elsewhere", "inactive", "nobody"])
def test_the_billing_practitioner_is_an_active_physician_of_the_patients_team(
    patient, physician, nurse, coordinator, other_team, who
):
    MembershipFactory(team=other_team, user=UserFactory(username="elsewhere"), role="physician")
    inactive = MembershipFactory(
        team=patient.care_team, user=UserFactory(username="inactive"), role="physician"
    ).user
    inactive.is_active = False
    inactive.save()

    errors = reasons(lambda: start(patient, coordinator, billing_practitioner=who))

    assert errors == {
        "billing_practitioner": [f"'{who}' is not an active physician of the patient's care team."]
    }
    assert Episode.objects.count() == 0


def test_conditions_are_icd10cm_codes_each_once_with_a_reason_per_item(
    patient, physician, coordinator
):
    codes = ["I10", "I1", "E11.9", "e11.9", "E11.65432", "110", "Z79.01", "I50.9 ", "I50-9"]

    errors = reasons(lambda: start(patient, coordinator, conditions=codes))

    assert errors == {
        "conditions": {
            1: [ICD10_CM_FORMAT],
            3: ["Listed twice."],
            4: [ICD10_CM_FORMAT],
            5: [ICD10_CM_FORMAT],
            8: [ICD10_CM_FORMAT],
        }
    }
    assert Episode.objects.count() == 0


def test_at_least_one_condition(patient, physician, coordinator):
    errors = reasons(lambda: start(patient, coordinator, conditions=[]))

    assert errors == {"conditions": ["At least one condition monitored (ICD-10-CM) is required."]}


def test_the_devices_supplied_are_the_patients_own_active_devices(
    patient, physician, coordinator, other_patient
):
    own, _ = register_device(patient=patient, kind="scale", serial="SC-1")
    revoked, _ = register_device(patient=patient, kind="scale", serial="SC-2")
    revoke_device(device=revoked)
    foreign, _ = register_device(patient=other_patient, kind="scale", serial="SC-3")

    errors = reasons(
        lambda: start(
            patient, coordinator, devices=[own.pk, revoked.pk, foreign.pk, own.pk, 999999]
        )
    )

    assert errors == {
        "devices": {
            1: [f"Device {revoked.pk} is not an active device of this patient."],
            2: [f"Device {foreign.pk} is not an active device of this patient."],
            3: ["Listed twice."],
            4: ["Device 999999 is not an active device of this patient."],
        }
    }
    assert Episode.objects.count() == 0
    assert Device.objects.count() == 3


def test_every_wrong_field_is_reported_at_once(patient, coordinator):
    errors = reasons(
        lambda: start(
            patient,
            coordinator,
            start=date(2026, 3, 12),
            consent_method="",
            billing_practitioner="nobody",
            conditions=["nope"],
        )
    )

    assert set(errors) == {"start", "consent_method", "billing_practitioner", "conditions"}


# --- One open episode, no overlap -----------------------------------------------------------


def test_a_second_open_episode_is_refused(patient, physician, coordinator):
    first = start(
        patient,
        coordinator,
        start=date(2026, 2, 1),
        consent_at=datetime(2026, 2, 1, 14, tzinfo=UTC),
    )

    with pytest.raises(EpisodeConflict) as raised:
        start(patient, coordinator)

    assert str(raised.value) == (
        f"The patient has an open episode (episode {first.pk}, started 2026-02-01): end it first."
    )
    assert list(Episode.objects.values_list("pk", flat=True)) == [first.pk]


def test_an_episode_may_not_reach_back_into_an_ended_one(patient, physician, coordinator):
    ended = EpisodeFactory(
        patient=patient,
        start=date(2026, 1, 1),
        end=date(2026, 2, 15),
        billing_practitioner=physician,
    )

    with pytest.raises(EpisodeConflict) as raised:
        start(
            patient,
            coordinator,
            start=date(2026, 2, 15),
            consent_at=datetime(2026, 2, 15, 14, tzinfo=UTC),
        )
    after = start(
        patient,
        coordinator,
        start=date(2026, 2, 16),
        consent_at=datetime(2026, 2, 16, 14, tzinfo=UTC),
    )

    assert str(raised.value) == (
        f"The episode would overlap episode {ended.pk} (2026-01-01 to 2026-02-15): start it "
        "after 2026-02-15."
    )
    assert list(Episode.objects.order_by("start").values_list("pk", flat=True)) == [
        ended.pk,
        after.pk,
    ]


def test_a_backdated_episode_may_not_cover_a_later_one(patient, physician, coordinator):
    later = EpisodeFactory(
        patient=patient,
        start=date(2026, 2, 1),
        end=date(2026, 2, 20),
        billing_practitioner=physician,
    )

    with pytest.raises(EpisodeConflict):
        start(
            patient,
            coordinator,
            start=date(2026, 1, 10),
            consent_at=datetime(2026, 1, 10, 14, tzinfo=UTC),
        )

    assert list(Episode.objects.values_list("pk", flat=True)) == [later.pk]


def test_another_patients_episodes_do_not_conflict(patient, physician, coordinator, team):
    EpisodeFactory(patient=PatientFactory(care_team=team), start=date(2026, 3, 1))

    assert start(patient, coordinator).patient_id == patient.pk


def test_the_database_holds_one_open_episode_per_patient_whatever_writes(patient, physician):
    EpisodeFactory(patient=patient, billing_practitioner=physician)

    with pytest.raises(IntegrityError), transaction.atomic():
        EpisodeFactory(patient=patient, billing_practitioner=physician)

    assert Episode.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_episodes_started_at_once_for_one_patient_leave_one(
    patient, physician, coordinator, run_concurrently
):
    # The patient's lock serialises the two; the second sees the first and is refused
    # with the conflict (not a database error).
    def attempt(day):
        def call():
            try:
                return start(
                    patient, coordinator, start=day, consent_at=datetime(2026, 2, 1, tzinfo=UTC)
                ).pk
            except EpisodeConflict:
                return "conflict"

        return call

    results = run_concurrently(attempt(date(2026, 3, 1)), attempt(date(2026, 3, 5)))

    assert sorted(results, key=str).count("conflict") == 1
    assert Episode.objects.count() == 1


# --- Ending ---------------------------------------------------------------------------------


def test_an_episode_ends_on_a_day_from_its_start_to_today(patient, physician, coordinator):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 3, 2), billing_practitioner=physician
    )

    ended = end_episode(episode=episode, end=date(2026, 3, 10), user=coordinator)

    episode.refresh_from_db()
    assert (episode.end, episode.ended_by_id) == (date(2026, 3, 10), coordinator.pk)
    assert ended.end == date(2026, 3, 10)


def test_an_episode_may_end_on_its_start_day(patient, physician, coordinator):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 3, 2), billing_practitioner=physician
    )

    end_episode(episode=episode, end=date(2026, 3, 2), user=coordinator)

    episode.refresh_from_db()
    assert episode.end == date(2026, 3, 2)


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (date(2026, 3, 1), "Is before the episode's start (2026-03-02)."),
        (
            date(2026, 3, 11),
            "Is after today (2026-03-10, the patient's time zone): end an episode on the day "
            "monitoring stopped, not ahead of it.",
        ),
    ],
)
def test_an_episode_does_not_end_before_its_start_or_after_today(
    patient, physician, coordinator, end, reason
):
    episode = EpisodeFactory(
        patient=patient, start=date(2026, 3, 2), billing_practitioner=physician
    )

    with pytest.raises(InvalidEpisode) as raised:
        end_episode(episode=episode, end=end, user=coordinator)

    assert raised.value.errors == {"end": [reason]}
    episode.refresh_from_db()
    assert (episode.end, episode.ended_by_id) == (None, None)


def test_an_episode_ends_once(patient, physician, coordinator, nurse):
    episode = EpisodeFactory(
        patient=patient,
        start=date(2026, 3, 2),
        end=date(2026, 3, 5),
        billing_practitioner=physician,
    )

    with pytest.raises(EpisodeConflict) as raised:
        end_episode(episode=episode, end=date(2026, 3, 9), user=nurse)

    assert str(raised.value) == "The episode ended already, on 2026-03-05."
    episode.refresh_from_db()
    assert (episode.end, episode.ended_by_id) == (date(2026, 3, 5), None)


# --- The factories other program tests build on ---------------------------------------------


def test_the_program_factories_build_rows_the_database_accepts(patient):
    episode = EpisodeFactory(patient=patient)
    entries = [
        TimeEntryFactory(patient=patient),
        TimeEntryFactory(patient=patient, interactive=True, approved=True),
        TimeEntryFactory(patient=patient, running=True),
    ]
    review = ReviewFactory(patient=patient)
    call = PatientNoteFactory(patient=patient, kind="call", call_outcome="reached")

    assert episode.billing_practitioner.care_team_memberships.get().role == "physician"
    assert episode.has_consent and episode.start == date(2026, 2, 24)
    assert [(e.activity, e.is_approved, e.is_running) for e in entries] == [
        ("data_review", False, False),
        ("phone_call", True, False),
        ("data_review", False, True),
    ]
    assert TimeEntry.objects.count() == 3
    assert Review.objects.get() == review
    assert PatientNote.objects.get() == call
    assert {review.reviewer.care_team_memberships.get().team_id} == {patient.care_team_id}
