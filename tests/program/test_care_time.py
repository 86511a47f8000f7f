"""Care time (program/care_time.py): time entered by hand, the start/stop timer (one per user,
held by the database), the cap on forgotten timers and its sweep, changes by the author until
approval, and who approves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.conf import settings

from monitoring.models import AuditEvent
from program.care_time import (
    APPROVE_REFUSAL,
    OWN_ENTRY_REFUSAL,
    SWEEP_ACTOR,
    ApprovalRefused,
    InvalidTimeEntry,
    NotApprovable,
    NotEditable,
    TimerAlreadyRunning,
    TimerNotRunning,
    approve_time_entry,
    cap_forgotten_timers,
    change_time_entry,
    discard_timer,
    log_time,
    may_approve,
    start_timer,
    stop_timer,
)
from program.models import TimeEntry
from program.tasks import cap_forgotten_timers_task
from tests.factories import AlertFactory, MembershipFactory, UserFactory
from tests.program.factories import EpisodeFactory, TimeEntryFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def invalid(call) -> dict:
    with pytest.raises(InvalidTimeEntry) as raised:
        call()
    return raised.value.errors


# --- Entered by hand ------------------------------------------------------------------------


def test_time_is_logged_by_hand(patient, nurse):
    entry = log_time(
        user=nurse,
        patient=patient,
        started_at=ago(minutes=30),
        minutes=12,
        activity="phone_call",
        interactive=True,
        note="Weights up 1.5 kg; advised to call if breathless.",
    )

    stored = TimeEntry.objects.get()
    assert stored.pk == entry.pk
    assert (stored.user_id, stored.patient_id, stored.source) == (nurse.pk, patient.pk, "manual")
    assert (stored.started_at, stored.stopped_at, stored.minutes) == (ago(minutes=30), None, 12)
    assert (stored.activity, stored.interactive, stored.capped) == ("phone_call", True, False)
    assert stored.note == "Weights up 1.5 kg; advised to call if breathless."
    assert (stored.approved_by_id, stored.approved_at) == (None, None)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"minutes": 0}, {"minutes": ["Between 1 and 120 minutes."]}),
        ({"minutes": 121}, {"minutes": ["Between 1 and 120 minutes."]}),
        (
            {"started_at": NOW + timedelta(minutes=5, seconds=1)},
            {"started_at": ["Is in the future."]},
        ),
        (
            {"started_at": ago(minutes=10), "minutes": 16},
            {"minutes": ["Would end in the future: the time was spent from started_at."]},
        ),
        (
            {"activity": "lunch"},
            {"activity": ["One of: data_review, phone_call, video_call, message, care_plan."]},
        ),
        (
            {"activity": "message", "interactive": True},
            {
                "interactive": [
                    "Only a phone or video call is a real-time interactive communication."
                ]
            },
        ),
        ({"note": "x" * 4001}, {"note": ["At most 4000 characters."]}),
    ],
)
def test_a_wrong_entry_is_refused_per_field_and_nothing_is_written(patient, nurse, fields, errors):
    entry = {"started_at": ago(hours=1), "minutes": 10, "activity": "data_review"} | fields

    assert invalid(lambda: log_time(user=nurse, patient=patient, **entry)) == errors
    assert TimeEntry.objects.count() == 0


def test_the_edges_of_an_entry_are_accepted(patient, nurse):
    # 120 minutes ending within the clock skew allowed; a video call is interactive.
    entry = log_time(
        user=nurse,
        patient=patient,
        started_at=ago(minutes=115),
        minutes=120,
        activity="video_call",
        interactive=True,
    )

    assert (entry.minutes, entry.interactive) == (120, True)


def test_the_most_minutes_an_entry_counts_is_a_setting(patient, nurse, settings):
    settings.VIGIL_TIME_ENTRY_MAX_MINUTES = 45

    errors = invalid(
        lambda: log_time(
            user=nurse, patient=patient, started_at=ago(hours=2), minutes=46, activity="care_plan"
        )
    )

    assert errors == {"minutes": ["Between 1 and 45 minutes."]}


# --- The timer ------------------------------------------------------------------------------


def test_a_timer_starts_running(patient, nurse):
    alert = AlertFactory(patient=patient)

    timer = start_timer(user=nurse, patient=patient, alert=alert)

    stored = TimeEntry.objects.get()
    assert stored.pk == timer.pk
    assert (stored.source, stored.started_at, stored.stopped_at, stored.minutes) == (
        "timer",
        NOW,
        None,
        None,
    )
    assert (stored.alert_id, stored.activity, stored.is_running) == (alert.pk, "data_review", True)


def test_a_second_timer_of_one_user_is_refused_naming_the_running_one(
    patient, nurse, team, other_patient
):
    running = start_timer(user=nurse, patient=patient)

    with pytest.raises(TimerAlreadyRunning) as raised:
        start_timer(user=nurse, patient=patient)

    assert raised.value.running == running
    assert list(TimeEntry.objects.values_list("pk", flat=True)) == [running.pk]


def test_two_users_each_run_a_timer(patient, nurse, physician):
    start_timer(user=nurse, patient=patient)
    start_timer(user=physician, patient=patient)

    assert TimeEntry.objects.filter(stopped_at__isnull=True).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_timers_started_at_once_by_one_user_leave_one_running(patient, nurse, run_concurrently):
    def attempt():
        try:
            return start_timer(user=nurse, patient=patient).pk
        except TimerAlreadyRunning:
            return "refused"

    results = run_concurrently(attempt, attempt)

    assert sorted(results, key=str)[-1] == "refused"
    assert results.count("refused") == 1
    running = TimeEntry.objects.get()
    assert running.pk in results and running.is_running


@pytest.mark.parametrize(
    ("elapsed", "minutes"),
    [
        (timedelta(seconds=5), 1),
        (timedelta(seconds=89), 1),
        (timedelta(seconds=90), 2),
        (timedelta(minutes=10, seconds=29), 10),
        (timedelta(minutes=10, seconds=30), 11),
        (timedelta(minutes=60), 60),
    ],
)
def test_a_stopped_timer_counts_the_elapsed_minutes_half_a_minute_up_at_least_one(
    patient, nurse, time_machine, elapsed, minutes
):
    timer = start_timer(user=nurse, patient=patient)
    time_machine.move_to(NOW + elapsed, tick=False)

    stopped = stop_timer(
        user=nurse, entry_id=timer.pk, activity="phone_call", interactive=True, note="Called."
    )

    stored = TimeEntry.objects.get()
    assert stored.pk == stopped.pk
    assert (stored.minutes, stored.capped, stored.stopped_at) == (minutes, False, NOW + elapsed)
    assert (stored.activity, stored.interactive, stored.note) == ("phone_call", True, "Called.")


def test_a_timer_stopped_past_the_cap_counts_the_cap_flagged(patient, nurse, time_machine):
    timer = start_timer(user=nurse, patient=patient)
    time_machine.move_to(NOW + timedelta(hours=3), tick=False)

    stop_timer(user=nurse, entry_id=timer.pk, activity="data_review")

    stored = TimeEntry.objects.get()
    assert (stored.minutes, stored.capped) == (60, True)
    assert stored.stopped_at == NOW + timedelta(minutes=60)


def test_the_cap_is_a_setting(patient, nurse, time_machine, settings):
    settings.VIGIL_TIMER_CAP_MINUTES = 20
    timer = start_timer(user=nurse, patient=patient)
    time_machine.move_to(NOW + timedelta(minutes=20, seconds=1), tick=False)

    stopped = stop_timer(user=nurse, entry_id=timer.pk, activity="data_review")

    assert (stopped.minutes, stopped.capped) == (20, True)


def test_a_stop_with_wrong_fields_leaves_the_timer_running(patient, nurse, time_machine):
    timer = start_timer(user=nurse, patient=patient)
    time_machine.move_to(NOW + timedelta(minutes=5), tick=False)

    errors = invalid(
        lambda: stop_timer(user=nurse, entry_id=timer.pk, activity="data_review", interactive=True)
    )

    assert errors == {
        "interactive": ["Only a phone or video call is a real-time interactive communication."]
    }
    assert TimeEntry.objects.get().is_running


def test_nobody_stops_another_users_timer(patient, nurse, physician):
    timer = start_timer(user=nurse, patient=patient)

    with pytest.raises(TimerNotRunning):
        stop_timer(user=physician, entry_id=timer.pk, activity="data_review")

    assert TimeEntry.objects.get().is_running


def test_a_timer_stops_once(patient, nurse):
    timer = start_timer(user=nurse, patient=patient)
    stop_timer(user=nurse, entry_id=timer.pk, activity="data_review")

    with pytest.raises(TimerNotRunning) as raised:
        stop_timer(user=nurse, entry_id=timer.pk, activity="phone_call")

    assert str(raised.value) == "The timer was stopped already."
    assert TimeEntry.objects.get().activity == "data_review"


def test_a_timer_started_by_mistake_is_discarded(patient, nurse):
    timer = start_timer(user=nurse, patient=patient)

    discarded = discard_timer(user=nurse, entry_id=timer.pk)

    assert discarded.pk == timer.pk
    assert TimeEntry.objects.count() == 0


def test_a_stopped_entry_is_not_discarded(patient, nurse):
    timer = start_timer(user=nurse, patient=patient)
    stop_timer(user=nurse, entry_id=timer.pk, activity="data_review")

    with pytest.raises(TimerNotRunning):
        discard_timer(user=nurse, entry_id=timer.pk)

    assert TimeEntry.objects.count() == 1


# --- The sweep of forgotten timers ----------------------------------------------------------


def test_the_sweep_caps_timers_running_past_the_cap_and_audits_each(patient, nurse, physician):
    forgotten = TimeEntryFactory(patient=patient, user=nurse, running=True, started_at=ago(hours=5))
    recent = TimeEntryFactory(
        patient=patient, user=physician, running=True, started_at=ago(minutes=59)
    )
    stopped = TimeEntryFactory(patient=patient, user=nurse, started_at=ago(hours=9), minutes=15)

    capped = cap_forgotten_timers()

    assert capped == 1
    forgotten.refresh_from_db()
    assert (forgotten.minutes, forgotten.capped) == (60, True)
    assert forgotten.stopped_at == ago(hours=4)
    recent.refresh_from_db()
    assert recent.is_running
    stopped.refresh_from_db()
    assert (stopped.minutes, stopped.capped) == (15, False)
    assert list(
        AuditEvent.objects.values_list(
            "actor", "user_id", "patient_id", "action", "model", "object_id", "fields"
        )
    ) == [
        (
            SWEEP_ACTOR,
            None,
            patient.pk,
            "change",
            "program.timeentry",
            str(forgotten.pk),
            ["capped", "minutes", "stopped_at"],
        )
    ]
    # Run twice: nothing more to do.
    assert cap_forgotten_timers() == 0
    assert AuditEvent.objects.count() == 1


def test_a_timer_capped_by_the_sweep_is_not_stopped_again(patient, nurse):
    timer = TimeEntryFactory(patient=patient, user=nurse, running=True, started_at=ago(hours=2))
    cap_forgotten_timers()

    with pytest.raises(TimerNotRunning) as raised:
        stop_timer(user=nurse, entry_id=timer.pk, activity="phone_call", interactive=True)

    assert str(raised.value) == (
        "The timer was stopped already, capped at 60 minutes: change the entry to say what "
        "the time was."
    )
    timer.refresh_from_db()
    assert (timer.activity, timer.minutes) == ("data_review", 60)


def test_the_sweep_takes_a_batch_and_enqueues_itself_when_more_remain(
    patient, team, django_capture_on_commit_callbacks
):
    users = [MembershipFactory(team=team).user for _ in range(3)]
    timers = [
        TimeEntryFactory(patient=patient, user=user, running=True, started_at=ago(hours=4 - i))
        for i, user in enumerate(users)
    ]

    with django_capture_on_commit_callbacks() as callbacks:
        assert cap_forgotten_timers(limit=2) == 2

    assert [c.task.name for c in callbacks] == ["program.tasks.cap_forgotten_timers_task"]
    assert [t.pk for t in TimeEntry.objects.filter(capped=True).order_by("started_at")] == [
        timers[0].pk,
        timers[1].pk,
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        assert cap_forgotten_timers(limit=2) == 1
    assert callbacks == []


def test_the_sweep_task_runs_the_sweep_and_beat_runs_the_task(patient, nurse):
    TimeEntryFactory(patient=patient, user=nurse, running=True, started_at=ago(hours=2))

    assert cap_forgotten_timers_task() == 1
    assert settings.CELERY_BEAT_SCHEDULE["cap-forgotten-timers"] == {
        "task": "program.tasks.cap_forgotten_timers_task",
        "schedule": 300.0,
    }


# --- Changes by the author ------------------------------------------------------------------


def test_the_author_changes_an_unapproved_entry(patient, nurse):
    entry = TimeEntryFactory(patient=patient, user=nurse, minutes=10)

    changed, fields = change_time_entry(
        entry=entry, user=nurse, minutes=14, activity="phone_call", interactive=True, note="x"
    )

    entry.refresh_from_db()
    assert (entry.minutes, entry.activity, entry.interactive, entry.note) == (
        14,
        "phone_call",
        True,
        "x",
    )
    assert fields == ["minutes", "activity", "interactive", "note"]
    assert changed.pk == entry.pk


def test_a_change_is_validated_as_a_new_entry(patient, nurse):
    entry = TimeEntryFactory(patient=patient, user=nurse, activity="data_review")

    errors = invalid(lambda: change_time_entry(entry=entry, user=nurse, interactive=True))

    assert errors == {
        "interactive": ["Only a phone or video call is a real-time interactive communication."]
    }
    entry.refresh_from_db()
    assert entry.interactive is False


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("someone else's", "Only the author of a time entry may change it."),
        ("approved", "The entry is approved: it may no longer be changed."),
        ("running", "The timer is running: stop it first."),
    ],
)
def test_an_entry_is_changed_by_its_author_until_approved(patient, nurse, physician, case, reason):
    entry = {
        "someone else's": lambda: TimeEntryFactory(patient=patient, user=physician),
        "approved": lambda: TimeEntryFactory(patient=patient, user=nurse, approved=True),
        "running": lambda: TimeEntryFactory(patient=patient, user=nurse, running=True),
    }[case]()
    before = TimeEntry.objects.values().get(pk=entry.pk)

    with pytest.raises(NotEditable) as raised:
        change_time_entry(entry=entry, user=nurse, note="changed")

    assert str(raised.value) == reason
    assert TimeEntry.objects.values().get(pk=entry.pk) == before


# --- Approval -------------------------------------------------------------------------------


def test_a_physician_of_the_team_approves_a_nurses_entry(patient, nurse, physician):
    entry = TimeEntryFactory(patient=patient, user=nurse)

    approved = approve_time_entry(entry=entry, user=physician)

    entry.refresh_from_db()
    assert (entry.approved_by_id, entry.approved_at) == (physician.pk, NOW)
    assert approved.is_approved


@pytest.mark.parametrize("persona", ["nurse", "coordinator"])
def test_nurses_and_coordinators_do_not_approve(patient, nurse, coordinator, persona):
    approver = {"nurse": nurse, "coordinator": coordinator}[persona]
    entry = TimeEntryFactory(patient=patient)

    with pytest.raises(ApprovalRefused) as raised:
        approve_time_entry(entry=entry, user=approver)

    assert str(raised.value) == APPROVE_REFUSAL
    entry.refresh_from_db()
    assert entry.approved_at is None


def test_a_physician_does_not_approve_their_own_entry(patient, physician):
    entry = TimeEntryFactory(patient=patient, user=physician)

    with pytest.raises(ApprovalRefused) as raised:
        approve_time_entry(entry=entry, user=physician)

    assert str(raised.value) == OWN_ENTRY_REFUSAL
    assert may_approve(user=physician, entry=entry) is False


def test_the_billing_practitioner_approves_their_own_time_in_their_episode(patient, physician):
    EpisodeFactory(patient=patient, start=date(2026, 3, 1), billing_practitioner=physician)
    entry = TimeEntryFactory(patient=patient, user=physician)

    approve_time_entry(entry=entry, user=physician)

    entry.refresh_from_db()
    assert entry.approved_by_id == physician.pk


def test_the_billing_practitioner_approves_whatever_their_role_now(patient, team, nurse):
    # Billing practitioner when the episode started, a nurse of the team since.
    practitioner = MembershipFactory(team=team, user=UserFactory(username="dr.now.nurse")).user
    EpisodeFactory(patient=patient, start=date(2026, 3, 1), billing_practitioner=practitioner)
    entry = TimeEntryFactory(patient=patient, user=nurse)

    approve_time_entry(entry=entry, user=practitioner)

    entry.refresh_from_db()
    assert entry.approved_by_id == practitioner.pk


def test_the_billing_practitioner_of_another_period_approves_as_their_role_says(
    patient, team, nurse
):
    # The episode ran in February (the patient's days); the entry is from March.
    practitioner = MembershipFactory(team=team, user=UserFactory(username="dr.then")).user
    EpisodeFactory(
        patient=patient,
        start=date(2026, 2, 1),
        end=date(2026, 2, 28),
        billing_practitioner=practitioner,
    )
    entry = TimeEntryFactory(patient=patient, user=nurse)

    with pytest.raises(ApprovalRefused):
        approve_time_entry(entry=entry, user=practitioner)


def test_the_entrys_day_is_the_patients_local_day(patient, team, nurse):
    # 2026-03-01 03:00 UTC is still 2026-02-28 in New York: the February episode's.
    practitioner = MembershipFactory(team=team, user=UserFactory(username="dr.feb")).user
    EpisodeFactory(
        patient=patient,
        start=date(2026, 2, 1),
        end=date(2026, 2, 28),
        billing_practitioner=practitioner,
    )
    entry = TimeEntryFactory(
        patient=patient, user=nurse, started_at=datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    )

    assert may_approve(user=practitioner, entry=entry) is True


def test_a_billing_practitioner_who_left_the_team_does_not_approve(
    patient, team, nurse, other_team
):
    practitioner = MembershipFactory(team=other_team, role="physician").user
    EpisodeFactory(patient=patient, start=date(2026, 3, 1), billing_practitioner=practitioner)
    entry = TimeEntryFactory(patient=patient, user=nurse)

    assert may_approve(user=practitioner, entry=entry) is False


def test_an_entry_is_approved_once(patient, nurse, physician, team):
    other_physician = MembershipFactory(team=team, role="physician").user
    entry = TimeEntryFactory(patient=patient, user=nurse)
    approve_time_entry(entry=entry, user=physician)

    with pytest.raises(NotApprovable) as raised:
        approve_time_entry(entry=entry, user=other_physician)

    assert str(raised.value) == "The entry is approved already."
    entry.refresh_from_db()
    assert entry.approved_by_id == physician.pk


def test_a_running_timer_is_not_approved(patient, nurse, physician):
    timer = start_timer(user=nurse, patient=patient)

    with pytest.raises(NotApprovable) as raised:
        approve_time_entry(entry=timer, user=physician)

    assert str(raised.value) == "The timer is running: it is approved once stopped."
    timer.refresh_from_db()
    assert timer.approved_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_once_approve_once(patient, nurse, physician, team, run_concurrently):
    other_physician = MembershipFactory(team=team, role="physician").user
    entry = TimeEntryFactory(patient=patient, user=nurse)

    def attempt(user):
        def call():
            try:
                return approve_time_entry(entry=TimeEntry.objects.get(pk=entry.pk), user=user)
            except NotApprovable:
                return "refused"

        return call

    results = run_concurrently(attempt(physician), attempt(other_physician))

    assert results.count("refused") == 1
    entry.refresh_from_db()
    assert entry.approved_by_id in {physician.pk, other_physician.pk}
