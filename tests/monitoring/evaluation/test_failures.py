"""No reading blocks its patient's evaluation (monitoring.evaluation.failures and the
isolation in evaluate_pending_readings): a reading whose evaluation raises is marked failed
and left, its siblings and later readings raise their alerts, the sweep does not loop on it,
and an operator sees it in the admin and retries it.

The fault is injected in code, not in a service: the threshold kind raises for one reading
(as a bug only that reading's data triggers would), the real kind evaluates every other one.
"""

import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from alerts.models import Alert
from monitoring.evaluation import enqueue_unevaluated_readings, evaluate_pending_readings
from monitoring.evaluation.failures import describe_error, retry_failed_evaluations
from monitoring.ingest import record_readings
from monitoring.models import Reading, Slot
from monitoring.patient_rules import apply_protocols
from monitoring.rules import KINDS, threshold
from monitoring.tasks import evaluate_patient_readings_task
from tests.factories import (
    MeasurementScheduleFactory,
    PatientFactory,
    ReadingFactory,
    ReadingItemFactory,
)
from tests.monitoring.conftest import QueuedTask
from tests.monitoring.rules.conftest import reference

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 04:00 in Los Angeles
HYPO_1 = reference("blood_glucose.thresholds.hypoglycemia_level_1")  # 54 <= g < 70 mg/dL
HYPO_2 = reference("blood_glucose.thresholds.hypoglycemia_level_2")  # g < 54 mg/dL
# The glucose of 40 mg/dL: level 2, well below its limit.
CRITICALLY_LOW = HYPO_2["upper"]["value"] - 14
NORMAL = HYPO_1["upper"]["value"] + 42  # 112 mg/dL: no rule of the diabetes protocol fires
# What an exception message may quote: a value and a date of the reading (PHI).
QUOTED = "glucose 112 mg/dL measured 2026-03-01T09:00:00+00:00 is odd"
LEVEL_2_ALERT = ("glucose_low", "critical", "open", 1, "hypoglycemia_level_2")
EVALUATE = evaluate_patient_readings_task.name


def evaluate(patient) -> QueuedTask:
    return QueuedTask(name=EVALUATE, args=[patient.pk], kwargs={})


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def la_patient(team):
    """The issue's patient: diabetes protocol, in Los Angeles."""
    patient = PatientFactory(care_team=team, timezone="America/Los_Angeles")
    apply_protocols(patient=patient, codes=["diabetes"])
    return patient


@pytest.fixture
def faulty_threshold(monkeypatch):
    """faulty_threshold(reading_id) -> the line that raises: from then on the threshold kind
    raises when that reading is among the readings it evaluates, with a message quoting
    the reading; the real kind evaluates every other batch."""
    real = threshold.evaluate

    def install(reading_id: int) -> int:
        def evaluate(rule, context):
            if any(reading.id == reading_id for reading in context.new):
                raise RuntimeError(QUOTED)
            return real(rule, context)

        monkeypatch.setitem(KINDS, "threshold", replace(KINDS["threshold"], evaluate=evaluate))
        return evaluate.__code__.co_firstlineno + 2

    return install


def post(patient, *items) -> list[Reading]:
    result = record_readings(patient=patient, items=list(items))
    assert result.created == len(items), result.as_dict()
    return [Reading.objects.get(patient=patient, client_id=item["id"]) for item in items]


def glucose(value: float, *, hours_ago: float) -> dict:
    measured = NOW - timedelta(hours=hours_ago)
    return ReadingItemFactory(value=value, unit="mg/dL", measured_at=measured.isoformat())


def states(*readings) -> list[tuple]:
    return [
        Reading.objects.values_list("evaluated_at", "evaluation_failed_at", "evaluation_error").get(
            pk=reading.pk
        )
        for reading in readings
    ]


def alerts_of(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.rule.key)
        for a in Alert.objects.filter(patient=patient).select_related("rule").order_by("id")
    ]


def error_at(line: int) -> str:
    return f"RuntimeError at tests/monitoring/evaluation/test_failures.py:{line} in evaluate"


# --- Isolation in evaluate_pending_readings -------------------------------------------------


def test_a_reading_whose_evaluation_raises_is_marked_failed_and_its_siblings_are_evaluated(
    la_patient, clock, faulty_threshold
):
    # given: one batch, the middle reading triggers the fault, the last is critically low
    before, faulty, low = post(
        la_patient,
        glucose(NORMAL, hours_ago=3),
        glucose(NORMAL, hours_ago=2),
        glucose(CRITICALLY_LOW, hours_ago=1),
    )
    line = faulty_threshold(faulty.pk)

    # when
    evaluated = evaluate_pending_readings(patient_id=la_patient.pk)

    # then
    assert evaluated == 2
    assert states(before, faulty, low) == [
        (NOW, None, ""),
        (None, NOW, error_at(line)),
        (NOW, None, ""),
    ]
    assert alerts_of(la_patient) == [LEVEL_2_ALERT]
    assert Alert.objects.get(patient=la_patient).reading_ids == [low.pk]


def test_a_glucose_of_40_posted_after_a_failed_reading_raises_its_critical_alert(
    la_patient, clock, faulty_threshold
):
    # given: a reading whose evaluation failed, alone
    (faulty,) = post(la_patient, glucose(NORMAL, hours_ago=2))
    line = faulty_threshold(faulty.pk)
    assert evaluate_pending_readings(patient_id=la_patient.pk) == 0
    clock.move_to(NOW + timedelta(minutes=5), tick=False)

    # when: the glucose of 40 arrives afterwards
    (low,) = post(la_patient, glucose(CRITICALLY_LOW, hours_ago=0))
    evaluated = evaluate_pending_readings(patient_id=la_patient.pk)

    # then: evaluated in a run of its own; the failed reading is left as it was
    assert evaluated == 1
    assert states(low, faulty) == [
        (NOW + timedelta(minutes=5), None, ""),
        (None, NOW, error_at(line)),
    ]
    assert alerts_of(la_patient) == [LEVEL_2_ALERT]
    assert Alert.objects.get(patient=la_patient).reading_ids == [low.pk]


@pytest.mark.parametrize(
    "measured_at",
    [
        datetime(1, 1, 1, 8, 0, tzinfo=UTC),  # 0001-01-01T00:00-08:00, midnight in Los Angeles
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),  # 0001-01-01T00:00Z, datetime's first instant
    ],
)
def test_a_reading_dated_year_one_in_los_angeles_no_longer_stops_its_patients_evaluation(
    la_patient, clock, measured_at
):
    # given: the reading, stored before ingest checked the range, and a glucose
    # schedule whose slot fulfilment once overflowed on it
    MeasurementScheduleFactory(patient=la_patient, metric="glucose", times=["07:00"])
    year_one = ReadingFactory(
        patient=la_patient,
        metric="glucose",
        value=NORMAL,
        unit="mg/dL",
        measured_at=measured_at,
        received_at=NOW - timedelta(minutes=1),
    )
    (low,) = post(la_patient, glucose(CRITICALLY_LOW, hours_ago=0))

    # when
    evaluated = evaluate_pending_readings(patient_id=la_patient.pk)

    # then: both evaluated in one run, the old one answering no slot
    assert evaluated == 2
    assert states(year_one, low) == [(NOW, None, ""), (NOW, None, "")]
    assert alerts_of(la_patient) == [LEVEL_2_ALERT]
    assert Slot.objects.filter(patient=la_patient).count() == 0


def test_an_error_about_the_run_is_raised_for_the_task_to_retry_and_marks_nothing(
    la_patient, clock, monkeypatch
):
    # given: the database fails over mid-evaluation
    readings = post(la_patient, glucose(NORMAL, hours_ago=2), glucose(CRITICALLY_LOW, hours_ago=1))

    def evaluate(rule, context):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(KINDS, "threshold", replace(KINDS["threshold"], evaluate=evaluate))

    # when
    with pytest.raises(OperationalError):
        evaluate_pending_readings(patient_id=la_patient.pk)

    # then
    assert states(*readings) == [(None, None, ""), (None, None, "")]
    assert alerts_of(la_patient) == []


def test_the_task_completes_when_a_reading_fails_and_counts_the_others(
    la_patient, clock, faulty_threshold
):
    faulty, low = post(
        la_patient, glucose(NORMAL, hours_ago=2), glucose(CRITICALLY_LOW, hours_ago=1)
    )
    faulty_threshold(faulty.pk)

    result = evaluate_patient_readings_task.apply(args=[la_patient.pk])

    assert (result.successful(), result.get()) == (True, 1)
    assert [state[:2] for state in states(faulty, low)] == [(None, NOW), (NOW, None)]
    assert alerts_of(la_patient) == [LEVEL_2_ALERT]


def test_a_failure_is_logged_once_with_ids_and_the_error_class_never_the_message(
    la_patient,
    clock,
    faulty_threshold,
    caplog,
    evaluation_queue,
    django_capture_on_commit_callbacks,
):
    # given
    (faulty,) = post(la_patient, glucose(NORMAL, hours_ago=2))
    faulty_threshold(faulty.pk)
    caplog.set_level(logging.INFO, logger="monitoring")

    # when: evaluated, then swept and evaluated again a minute past the grace
    evaluate_pending_readings(patient_id=la_patient.pk)
    later = NOW + settings.VIGIL_EVALUATION_GRACE + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_unevaluated_readings(now=later)
    evaluate_pending_readings(patient_id=la_patient.pk, now=later)

    # then
    logged = [(r.name, r.levelname, r.getMessage().split("\n")[0]) for r in caplog.records]
    assert logged == [
        (
            "monitoring.evaluation.readings",
            "WARNING",
            f"evaluation of 1 readings of patient {la_patient.pk} failed with RuntimeError; "
            "evaluating them one by one",
        ),
        (
            "monitoring.evaluation.failures",
            "ERROR",
            f"evaluation of reading {faulty.pk} of patient {la_patient.pk} failed with "
            "RuntimeError; marked failed, not retried until an operator does",
        ),
    ]
    traceback_text = caplog.records[1].getMessage()
    assert "raise RuntimeError(QUOTED)" in traceback_text
    assert QUOTED not in caplog.text
    # The value as a number of its own: ids such as patient 1122 may contain its digits, and
    # an id may even be the value itself (reading 112): the logged ids are taken out first.
    without_ids = caplog.text.replace(f"reading {faulty.pk} ", "").replace(
        f"patient {la_patient.pk} ", ""
    )
    assert re.search(rf"(?<![\d.]){NORMAL:g}(?![\d.])", without_ids) is None
    assert len(evaluation_queue) == 0


# --- The sweep ------------------------------------------------------------------------------


def test_the_sweep_does_not_enqueue_a_failed_reading_again(
    la_patient, clock, faulty_threshold, evaluation_queue, django_capture_on_commit_callbacks
):
    # given: a failed reading and another patient's reading, both waiting past the grace
    (faulty,) = post(la_patient, glucose(NORMAL, hours_ago=2))
    line = faulty_threshold(faulty.pk)
    evaluate_pending_readings(patient_id=la_patient.pk)
    waiting = ReadingFactory(received_at=NOW)
    later = NOW + settings.VIGIL_EVALUATION_GRACE + timedelta(seconds=1)

    # when: swept every minute for three minutes
    counts = []
    for minute in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            counts.append(enqueue_unevaluated_readings(now=later + timedelta(minutes=minute)))

    # then: only the other patient's, each time (its task has not run)
    assert counts == [1, 1, 1]
    assert evaluation_queue.tasks() == [evaluate(waiting.patient)] * 3
    assert states(faulty) == [(None, NOW, error_at(line))]


# --- Retrying -------------------------------------------------------------------------------


def test_retrying_clears_only_failed_marks_and_enqueues_one_evaluation_per_patient(
    clock, evaluation_queue, django_capture_on_commit_callbacks
):
    # given
    first, second = PatientFactory.create_batch(2)
    failed = {"evaluation_failed_at": NOW, "evaluation_error": "RuntimeError at x.py:1 in f"}
    first_failed = ReadingFactory.create_batch(2, patient=first, **failed)
    second_failed = ReadingFactory(patient=second, **failed)
    evaluated = ReadingFactory(patient=first, evaluated_at=NOW)
    pending = ReadingFactory(patient=second)
    chosen = [*first_failed, second_failed, evaluated, pending]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        retried = retry_failed_evaluations(reading_ids=[r.pk for r in chosen])

    # then
    assert retried == 3
    assert states(*chosen) == [
        (None, None, ""),
        (None, None, ""),
        (None, None, ""),
        (NOW, None, ""),
        (None, None, ""),
    ]
    assert evaluation_queue.tasks() == [evaluate(first), evaluate(second)]


def test_a_retried_reading_is_evaluated_once_its_cause_is_gone_and_marked_again_if_not(
    la_patient, clock, faulty_threshold, monkeypatch
):
    # given
    (faulty,) = post(la_patient, glucose(NORMAL, hours_ago=2))
    line = faulty_threshold(faulty.pk)
    evaluate_pending_readings(patient_id=la_patient.pk)

    # when: retried with the fault still there, then after it is fixed
    retry_failed_evaluations(reading_ids=[faulty.pk])
    again = NOW + timedelta(minutes=10)
    still_failing = evaluate_pending_readings(patient_id=la_patient.pk, now=again)
    state_while_failing = states(faulty)
    monkeypatch.undo()
    retry_failed_evaluations(reading_ids=[faulty.pk])
    fixed = evaluate_pending_readings(patient_id=la_patient.pk, now=again)

    # then
    assert (still_failing, state_while_failing) == (0, [(None, again, error_at(line))])
    assert (fixed, states(faulty)) == (1, [(again, None, "")])


def test_describe_error_names_the_class_and_the_line_never_the_message():
    def fail():
        raise ValueError(QUOTED)

    try:
        fail()
    except ValueError as error:
        described = describe_error(error)

    line = fail.__code__.co_firstlineno + 1
    assert described == (
        f"ValueError at tests/monitoring/evaluation/test_failures.py:{line} in fail"
    )


def test_describe_error_names_vigils_own_line_when_a_library_raised():
    def parse():
        return json.loads('{"glucose": 112')  # the library's message would quote it

    try:
        parse()
    except json.JSONDecodeError as error:
        described = describe_error(error)

    line = parse.__code__.co_firstlineno + 1
    assert described == (
        f"JSONDecodeError at tests/monitoring/evaluation/test_failures.py:{line} in parse"
    )


# --- The admin ------------------------------------------------------------------------------


@pytest.fixture
def as_nurse(nurse) -> Client:
    client = Client()
    client.force_login(nurse)
    return client


READINGS = reverse("admin:monitoring_reading_changelist")
OVERFLOW = "OverflowError at monitoring/schedules/fulfilment.py:114 in _span"


def failed_reading(patient) -> Reading:
    return ReadingFactory(
        patient=patient,
        received_at=NOW - timedelta(hours=1),
        evaluation_failed_at=NOW - timedelta(hours=1),
        evaluation_error=OVERFLOW,
    )


def test_the_admin_filters_failed_readings_and_shows_the_error(
    as_nurse, la_patient, other_patient, clock
):
    # given
    mine = failed_reading(la_patient)
    ReadingFactory(patient=la_patient)  # waiting, not failed
    ReadingFactory(patient=la_patient, evaluated_at=NOW)
    failed_reading(other_patient)

    # when
    listed = as_nurse.get(READINGS, {"evaluation_failed": "yes"})
    page = as_nurse.get(reverse("admin:monitoring_reading_change", args=[mine.pk]))

    # then
    assert listed.status_code == 200
    assert [reading.pk for reading in listed.context["cl"].result_list] == [mine.pk]
    assert page.status_code == 200
    assert OVERFLOW in page.content.decode()
    assert "evaluation_error" not in page.context["adminform"].form.fields  # read-only


def test_the_retry_action_clears_her_teams_marks_and_enqueues_the_evaluation(
    as_nurse,
    la_patient,
    other_patient,
    clock,
    faulty_threshold,
    monkeypatch,
    evaluation_queue,
    django_capture_on_commit_callbacks,
):
    # given: a reading of hers that failed (the fault since fixed), and another team's
    (faulty,) = post(la_patient, glucose(NORMAL, hours_ago=2))
    faulty_threshold(faulty.pk)
    evaluate_pending_readings(patient_id=la_patient.pk)
    monkeypatch.undo()
    theirs = failed_reading(other_patient)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = as_nurse.post(
            READINGS,
            {"action": "retry_evaluation", "_selected_action": [faulty.pk, theirs.pk]},
            follow=True,
        )

    # then
    assert [str(message) for message in response.context["messages"]] == [
        "Evaluation retried: 1 reading."
    ]
    assert states(faulty) == [(None, None, "")]
    assert states(theirs) == [
        (
            None,
            NOW - timedelta(hours=1),
            "OverflowError at monitoring/schedules/fulfilment.py:114 in _span",
        )
    ]
    assert evaluation_queue.tasks() == [evaluate(la_patient)]

    # and when the queued task runs, as a worker would, the reading is evaluated
    (task,) = evaluation_queue.tasks()
    assert evaluate_patient_readings_task.apply(args=task.args).get() == 1
    assert states(faulty) == [(NOW, None, "")]
