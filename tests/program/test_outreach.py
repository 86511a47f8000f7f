"""Keeping patients above the line (program/outreach.py): the daily keep-sending nudge to
patients whose device period is at risk, through monitoring.nudges and its rails, with the
message variants the migration seeds. Time is frozen and passed explicitly, except in the
real worker's test."""

import importlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import factory
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.utils import timezone

from monitoring.models import DeviceDay, Nudge
from program import tasks
from program.models import Episode
from program.outreach import keep_sending_nudges_on, nudge_patients_at_risk
from tests import broker
from tests.celery_worker import WorkerProcess, start_worker, stop_worker, wait_for
from tests.factories import NudgeFactory, PatientFactory, UserFactory

# Wednesday 11 March 2026, 16:30 in Berlin (CET): in the late-afternoon window.
NOW = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)
TODAY = date(2026, 3, 11)
START = date(2026, 3, 1)  # the first device period: 1–30 March
DELIVER = "monitoring.tasks.deliver_nudge_task"
SEEDED = importlib.import_module("monitoring.migrations.0019_keep_sending_nudges")

# The seeded variants for a patient with data on 5 of the 10 days so far (1, 3, 5, 7, 9
# March): 20 days left, today included.
ENGLISH = {
    "plain-keep-sending-en": "No reading from your device yet today. Days with readings in "
    "this monitoring period: 5 of 16.",
    "benefit-keep-sending-en": "A reading today adds to the picture you and your care team "
    "have of how you are doing. Days with readings in this monitoring period: 5 of 16.",
    "care-team-keep-sending-en": "Your care team follows your device readings: 5 of 16 days "
    "with readings in this monitoring period, days left: 20. A reading today helps.",
}
GERMAN = {
    "plain-keep-sending-de": "Heute ist noch kein Messwert von Ihrem Gerät eingegangen. Tage "
    "mit Messwerten in diesem Messzeitraum: 5 von 16.",
    "benefit-keep-sending-de": "Ein Messwert heute ergänzt das Bild, das Sie und Ihr "
    "Behandlungsteam von Ihrem Verlauf haben. Tage mit Messwerten in diesem Messzeitraum: "
    "5 von 16.",
    "care-team-keep-sending-de": "Ihr Behandlungsteam verfolgt die Messwerte Ihres Geräts: 5 "
    "von 16 Tagen mit Messwerten in diesem Messzeitraum, verbleibende Tage: 20. Ein Messwert "
    "heute hilft.",
}


class EpisodeFactory(factory.django.DjangoModelFactory):
    """An open episode from 1 March 2026 (tests/program/factories.py has the shared one)."""

    class Meta:
        model = Episode

    patient = factory.SubFactory(PatientFactory)
    start = START
    billing_practitioner = factory.SubFactory(UserFactory)


@pytest.fixture(autouse=True)
def _rails(settings):
    settings.VIGIL_NUDGE_MIN_GAP_MINUTES = 30
    settings.VIGIL_NUDGE_WARMUP_DECISIONS = 5


@pytest.fixture(autouse=True)
def clock(request, time_machine):
    # Not for the real worker: its clock is real, so the test's must be too.
    if not request.node.get_closest_marker("worker"):
        time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def seeded_variants(db):
    """The migration's keep-sending variants (a transactional test's flush elsewhere may
    have removed them; inserting them again changes nothing when they are there)."""
    SEEDED.add_default_variants(apps, None)


def with_device_days(patient, *days: date) -> None:
    DeviceDay.objects.bulk_create([DeviceDay(patient=patient, day=day) for day in days])


def march(*days: int) -> list[date]:
    return [date(2026, 3, day) for day in days]


def at_risk_patient(team, *, episode: dict | None = None, **fields):
    """Device data on 5 of the 10 days so far: the pace (1 in 2) leads to 15 of 16."""
    patient = PatientFactory(care_team=team, **({"timezone": "Europe/Berlin"} | fields))
    EpisodeFactory(patient=patient, **(episode or {}))
    with_device_days(patient, *march(1, 3, 5, 7, 9))
    return patient


def keep_sending_nudges():
    return list(Nudge.objects.filter(purpose="keep_sending").order_by("id"))


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("seeded_variants")]


# --- Who is nudged -----------------------------------------------------------------------------


def test_an_at_risk_patient_is_nudged_once_a_day(team, django_capture_on_commit_callbacks):
    # given
    patient = at_risk_patient(team)

    # when: the job runs at 16:30, again at once (a rerun), and at 17:45 local
    with django_capture_on_commit_callbacks() as callbacks:
        runs = [
            nudge_patients_at_risk(now=NOW),
            nudge_patients_at_risk(now=NOW),
            nudge_patients_at_risk(now=NOW + timedelta(minutes=75)),
        ]

    # then: one nudge, saying where the period stands
    assert runs == [(1, None), (0, None), (0, None)]
    [nudge] = keep_sending_nudges()
    assert (nudge.patient, nudge.slot, nudge.local_day, nudge.status) == (
        patient,
        None,
        TODAY,
        "pending",
    )
    assert nudge.text == ENGLISH[nudge.variant.key]
    assert nudge.decision["period_days"] == {"with_data": 5, "needed": 16, "left": 20}
    assert sorted(c["key"] for c in nudge.decision["candidates"]) == sorted(ENGLISH)
    assert [(c.task.name, c.args) for c in callbacks] == [(DELIVER, (nudge.pk,))]


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_nudge_once(team, run_concurrently, settings):
    # given: a patient at risk, and no minimum gap: only the unique constraint stands
    # between the two runs and a second nudge
    patient = at_risk_patient(team)
    settings.VIGIL_NUDGE_MIN_GAP_MINUTES = 0
    broker.purge("notifications")

    # when: two workers run the job at the same moment
    results = run_concurrently(
        lambda: nudge_patients_at_risk(now=NOW), lambda: nudge_patients_at_risk(now=NOW)
    )

    # then
    assert sorted(results) == [(0, None), (1, None)]
    assert [(n.patient, n.local_day) for n in keep_sending_nudges()] == [(patient, TODAY)]
    broker.purge("notifications")  # the delivery enqueued after commit


def test_a_patient_still_at_risk_the_next_day_is_nudged_again(team):
    patient = at_risk_patient(team)

    nudge_patients_at_risk(now=NOW)
    nudge_patients_at_risk(now=NOW + timedelta(days=1))

    assert [(n.patient, n.local_day) for n in keep_sending_nudges()] == [
        (patient, TODAY),
        (patient, TODAY + timedelta(days=1)),
    ]
    # 5 days with data of 11 so far, 19 days left
    assert keep_sending_nudges()[1].decision["period_days"] == {
        "with_data": 5,
        "needed": 16,
        "left": 19,
    }


def test_a_patient_on_track_is_not_nudged(team):
    patient = PatientFactory(care_team=team)
    EpisodeFactory(patient=patient)
    with_device_days(patient, *march(1, 2, 3, 4, 5, 6, 7, 8))  # 8 of 10: 24 at this pace

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_a_patient_who_reached_the_full_period_days_is_not_nudged(team):
    # given: the period from 20 February has 16 days with data (20 February to 7 March)
    patient = PatientFactory(care_team=team)
    EpisodeFactory(patient=patient, start=date(2026, 2, 20))
    with_device_days(patient, *[date(2026, 2, 20) + timedelta(days=n) for n in range(16)])

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_a_patient_who_can_no_longer_reach_the_full_period_days_is_not_nudged(team):
    # given: the period from 20 February has 2 days with data and 11 days left (13 < 16):
    # a count they cannot reach is not what to tell them (program/outreach.py); the panel
    # shows the period at risk for the care team to call
    patient = PatientFactory(care_team=team)
    EpisodeFactory(patient=patient, start=date(2026, 2, 20))
    with_device_days(patient, date(2026, 2, 20), date(2026, 2, 21))

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_a_patient_who_sent_device_data_today_is_not_nudged(team):
    patient = at_risk_patient(team)
    with_device_days(patient, TODAY)

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_a_patient_without_an_episode_is_not_nudged(team):
    patient = PatientFactory(care_team=team)
    with_device_days(patient, *march(1, 3, 5, 7, 9))

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


@pytest.mark.parametrize(
    "episode",
    [
        pytest.param({"end": TODAY - timedelta(days=1)}, id="ended yesterday"),
        pytest.param({"start": TODAY + timedelta(days=1)}, id="starts tomorrow"),
    ],
)
def test_a_patient_whose_episode_does_not_run_today_is_not_nudged(team, episode):
    at_risk_patient(team, episode=episode)

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_an_episode_ending_within_the_period_is_not_nudged_towards_days_it_no_longer_has(
    team,
):
    # given: the episode ends on 20 March: 5 days with data, 10 left, 15 at most (cannot)
    at_risk_patient(team, episode={"end": date(2026, 3, 20)})

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


# --- The rails, in the patient's local day -------------------------------------------------------


def test_quiet_hours_hold_the_nudge_back(team):
    at_risk_patient(team, quiet_hours_start=time(16), quiet_hours_end=time(21))

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert Nudge.objects.count() == 0


@pytest.mark.parametrize("cap", [0, 1])
def test_the_daily_cap_holds_the_nudge_back(team, cap):
    # given: a reminder this morning at 09:00 local
    patient = at_risk_patient(team, daily_nudge_cap=cap)
    NudgeFactory(patient=patient, created_at=datetime(2026, 3, 11, 8, 0, tzinfo=UTC))

    assert nudge_patients_at_risk(now=NOW) == (0, None)
    assert keep_sending_nudges() == []


def test_a_patient_just_messaged_is_nudged_at_a_later_run_of_the_window(team):
    # given: a reminder at 16:20 local (minimum gap 30 minutes)
    patient = at_risk_patient(team)
    NudgeFactory(patient=patient, created_at=NOW - timedelta(minutes=10))

    # when: the runs at 16:30, 16:45 and 17:00
    runs = [nudge_patients_at_risk(now=NOW + timedelta(minutes=m)) for m in (0, 15, 30)]

    # then
    assert runs == [(0, None), (0, None), (1, None)]
    assert [n.created_at for n in keep_sending_nudges()] == [NOW + timedelta(minutes=30)]


@pytest.mark.parametrize(
    "local", [time(15, 59), time(19, 0), time(10, 30)], ids=["before", "at the end", "morning"]
)
def test_no_nudge_outside_the_late_afternoon(team, local):
    at_risk_patient(team)
    now = datetime.combine(TODAY, local, tzinfo=ZoneInfo("Europe/Berlin"))

    assert nudge_patients_at_risk(now=now) == (0, None)
    assert keep_sending_nudges() == []


def test_each_patient_is_judged_in_their_own_local_day(team):
    # given: 00:30 UTC on 12 March is 17:30 on the 11th in Los Angeles (PDT since 8 March)
    # and 01:30 on the 12th in Berlin; two Angelenos at risk, one of them with device data
    # on their 11th, which the UTC date would miss
    now = datetime(2026, 3, 12, 0, 30, tzinfo=UTC)
    angeleno = at_risk_patient(team, timezone="America/Los_Angeles")
    with_data_today = at_risk_patient(team, timezone="America/Los_Angeles")
    with_device_days(with_data_today, TODAY)
    at_risk_patient(team)  # Berlin: outside the window

    assert nudge_patients_at_risk(now=now) == (1, None)

    [nudge] = keep_sending_nudges()
    assert (nudge.patient, nudge.local_day) == (angeleno, TODAY)
    # their 11th: 20 days left, today included (the UTC date would say 19)
    assert nudge.decision["period_days"] == {"with_data": 5, "needed": 16, "left": 20}


def test_a_german_patient_gets_german_text(team):
    at_risk_patient(team, language="de")

    nudge_patients_at_risk(now=NOW)

    [nudge] = keep_sending_nudges()
    assert nudge.variant.key in GERMAN
    assert nudge.text == GERMAN[nudge.variant.key]


# --- Batches, cost, the panel's look-up -----------------------------------------------------


def test_a_full_batch_says_where_the_next_one_starts(team):
    first, second = at_risk_patient(team), at_risk_patient(team)
    episodes = list(Episode.objects.order_by("pk"))

    assert nudge_patients_at_risk(now=NOW, limit=1) == (1, episodes[0].pk)
    assert nudge_patients_at_risk(now=NOW, after_episode_id=episodes[0].pk, limit=1) == (
        1,
        episodes[1].pk,
    )
    assert nudge_patients_at_risk(now=NOW, after_episode_id=episodes[1].pk, limit=1) == (0, None)
    assert [n.patient for n in keep_sending_nudges()] == [first, second]


def test_the_batch_costs_four_queries_whatever_the_number_of_patients(
    team, django_assert_num_queries
):
    # given: patients on track (nothing to nudge) in two zones inside the window
    for zone in ["Europe/Berlin", "Europe/Paris", "Europe/Berlin"]:
        patient = PatientFactory(care_team=team, timezone=zone)
        EpisodeFactory(patient=patient)
        with_device_days(patient, *march(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))

    # then: zones, episodes with their patients, device days, today's nudges
    with django_assert_num_queries(4):
        assert nudge_patients_at_risk(now=NOW) == (0, None)


def test_the_panel_learns_who_was_nudged_on_their_local_day_in_one_query(
    team, django_assert_num_queries
):
    nudged, yesterday, other = (PatientFactory(care_team=team) for _ in range(3))
    NudgeFactory(patient=nudged, purpose="keep_sending", local_day=TODAY, status="sent")
    NudgeFactory(patient=yesterday, purpose="keep_sending", local_day=TODAY - timedelta(days=1))
    NudgeFactory(patient=other, purpose="streak")

    with django_assert_num_queries(1):
        statuses = keep_sending_nudges_on(
            local_days={nudged.pk: TODAY, yesterday.pk: TODAY, other.pk: TODAY}
        )

    assert statuses == {nudged.pk: "sent"}
    assert keep_sending_nudges_on(local_days={}) == {}


# --- The Celery task ---------------------------------------------------------------------------


def test_the_task_continues_a_full_batch_after_commit(
    team, monkeypatch, django_capture_on_commit_callbacks
):
    at_risk_patient(team), at_risk_patient(team)
    first = Episode.objects.order_by("pk").first()
    monkeypatch.setattr(tasks, "OUTREACH_BATCH", 1)

    with django_capture_on_commit_callbacks() as callbacks:
        assert tasks.nudge_patients_at_risk_task() == 1

    assert [(c.task.name, c.args) for c in callbacks if c.task.name.startswith("program")] == [
        ("program.tasks.nudge_patients_at_risk_task", (first.pk,))
    ]


def test_beat_runs_the_task():
    entry = django_settings.CELERY_BEAT_SCHEDULE["nudge-patients-at-risk"]
    assert entry == {"task": "program.tasks.nudge_patients_at_risk_task", "schedule": 900.0}
    assert tasks.nudge_patients_at_risk_task.name == entry["task"]


def zone_at_five_pm(now: datetime) -> str:
    """A fixed-offset zone where it is 17:xx now (Etc/GMT-N is N hours east of UTC)."""
    offset = (17 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


@pytest.fixture
def worker(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    broker.purge("evaluation", "notifications")
    worker = start_worker(tmp_path, queues=["evaluation"], pool="prefork")
    try:
        yield worker
    finally:
        stop_worker(worker)
        broker.purge("evaluation", "notifications")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_task_and_nudges_once(worker, team):
    # given: a patient at risk where it is late afternoon now (the worker's clock is real)
    now = timezone.now()
    zone = zone_at_five_pm(now)
    today = now.astimezone(ZoneInfo(zone)).date()
    patient = PatientFactory(care_team=team, timezone=zone)
    EpisodeFactory(patient=patient, start=today - timedelta(days=10))
    with_device_days(patient, *[today - timedelta(days=n) for n in (10, 8, 6, 4, 2)])

    # when: beat's task, twice
    tasks.nudge_patients_at_risk_task.delay()
    wait_for("the keep-sending nudge", lambda: keep_sending_nudges(), worker)
    tasks.nudge_patients_at_risk_task.delay()
    wait_for("the second run", lambda: worker.log().count("succeeded") >= 2, worker)

    # then
    [nudge] = keep_sending_nudges()
    assert (nudge.patient, nudge.local_day) == (patient, today)
    assert nudge.decision["period_days"] == {"with_data": 5, "needed": 16, "left": 20}
    assert nudge.text == ENGLISH[nudge.variant.key]
    assert worker.log().count("nudge_patients_at_risk_task") >= 2
