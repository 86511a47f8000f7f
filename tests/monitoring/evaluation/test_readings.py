"""Readings in through record_readings, alerts out of evaluate_pending_readings and the
scheduled-rules sweep: exact alerts, grouping, inhibition, silences, versions, idempotency,
bounded queries and two workers at once.

Clinical numbers come from the clinical reference (read in the test, or cited by path).
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.lifecycle import resolve_alert
from alerts.models import Alert, AlertEvent, Silence
from alerts.tasks import route_alert_event_task
from monitoring.evaluation import (
    claim_due_scheduled_rules,
    enqueue_due_scheduled_rules,
    evaluate_pending_readings,
    evaluate_scheduled_rules,
)
from monitoring.ingest import record_readings
from monitoring.models import Reading, Rule
from monitoring.patient_rules import apply_protocols, change_rule
from monitoring.protocols import protocol_templates
from monitoring.tasks import evaluate_scheduled_rules_task
from tests.factories import MedicationPlanFactory, PatientFactory, ReadingItemFactory, SlotFactory
from tests.monitoring.conftest import BrokerQueue
from tests.monitoring.rules.conftest import reference, stated_limit, template

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 07:00 in New York, the patient's zone

HYPO_1 = reference("blood_glucose.thresholds.hypoglycemia_level_1")  # 54 <= g < 70 mg/dL
HYPO_2 = reference("blood_glucose.thresholds.hypoglycemia_level_2")  # g < 54 mg/dL
HYPER_CRITICAL = reference("blood_glucose.thresholds.hyperglycemia_critical_default")  # > 400
INR_RANGE = reference("inr.target_ranges.0")  # 2.0–3.0
INR_CRITICAL = stated_limit("inr.thresholds.inr_critical")  # INR >= 5.0
INR_ABOVE_10 = stated_limit("inr.thresholds.inr_gt_10")  # INR > 10
SPO2_COPD_WARNING = stated_limit("spo2.thresholds.spo2_copd_warning")  # SpO2 <= 87 %
HR_HIGH_CRITICAL = stated_limit("heart_rate.thresholds.hr_high_critical")  # HR >= 131
NORMAL_GLUCOSE = 112
LOW_GLUCOSE = HYPO_1["lower"]["value"] + 6  # level 1, not level 2


# --- Helpers --------------------------------------------------------------------------------


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def enrolled(patient, *protocols):
    apply_protocols(patient=patient, codes=list(protocols))
    return patient


def item(kind: str, before: timedelta = timedelta(hours=1), **fields):
    """A reading as the app posts it, measured `before` the current (frozen) time."""
    measured = datetime.now(UTC) - before
    return ReadingItemFactory(type=kind, measured_at=measured.isoformat(), **fields)


def glucose(value, before=timedelta(hours=1), unit="mg/dL", **f):
    return item("glucose", before, value=value, unit=unit, **f)


def post(patient, *items):
    """Store readings the way the product does (the API's domain function)."""
    for start in range(0, len(items), settings.VIGIL_MAX_BATCH):
        batch = list(items[start : start + settings.VIGIL_MAX_BATCH])
        result = record_readings(patient=patient, items=batch)
        assert result.created == len(batch), result.as_dict()


def evaluate(patient, capture):
    """Evaluate the patient's pending readings; return the notification routings enqueued."""
    with capture() as callbacks:
        evaluate_pending_readings(patient_id=patient.pk)
    return routed(callbacks)


def routed(callbacks) -> list[int]:
    """The AlertEvent ids whose notification routing was enqueued on commit."""
    return [
        callback.args[0]
        for callback in callbacks
        if getattr(callback, "task", None) == route_alert_event_task
    ]


def alerts_of(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.rule.key, a.rule_version)
        for a in Alert.objects.filter(patient=patient).select_related("rule").order_by("id")
    ]


def events_of(patient) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert__patient=patient)
        .order_by("id")
        .values_list("alert__dedupe_key", "kind", "data")
    )


def pending(patient) -> int:
    return Reading.objects.filter(patient=patient, evaluated_at__isnull=True).count()


def snapshot(patient) -> tuple:
    alerts = list(
        Alert.objects.filter(patient=patient)
        .order_by("id")
        .values_list(
            "id", "dedupe_key", "severity", "status", "occurrences", "rule_version",
            "rule_parameters", "first_triggered_at", "last_triggered_at", "values",
            "reading_ids", "condition_cleared_at",
        )
    )  # fmt: skip
    evaluated = sorted(
        Reading.objects.filter(patient=patient).values_list("client_id", "evaluated_at")
    )
    return alerts, events_of(patient), evaluated


# --- One reading, one exact alert -----------------------------------------------------------


@pytest.mark.django_db
def test_2_8_mmol_per_l_raises_a_critical_level_2_alert_recording_the_rule_that_fired(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: 2.8 mmol/L is 50.4 mg/dL, below the level-2 limit (< 3.0 mmol/L, < 54 mg/dL)
    enrolled(patient, "diabetes")
    post(patient, glucose(2.8, unit="mmol/L"))
    reading = Reading.objects.get(patient=patient)

    # when
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then
    alert = Alert.objects.get(patient=patient)
    level_2 = Rule.objects.get(patient=patient, key="hypoglycemia_level_2")
    assert (
        alert.dedupe_key, alert.severity, alert.status, alert.occurrences, alert.rule,
        alert.rule_version, alert.rule_parameters, alert.values, alert.reading_ids,
        alert.first_triggered_at, alert.last_triggered_at, alert.title,
    ) == (
        "glucose_low", "critical", "open", 1, level_2,
        1, template("hypoglycemia_level_2").parameters, {"observed": "50 mg/dL"}, [reading.pk],
        NOW - timedelta(hours=1), NOW - timedelta(hours=1), "Level 2 hypoglycaemia",
    )  # fmt: skip
    event = AlertEvent.objects.get(alert=alert)
    assert (event.kind, event.data, event.at) == (
        "raised",
        {"severity": "critical", "rule_version": 1},
        NOW,
    )
    assert enqueued == [event.pk]
    assert Reading.objects.get(pk=reading.pk).evaluated_at == NOW


@pytest.mark.django_db
def test_176_to_179_8_lb_from_one_morning_to_the_next_raises_a_heart_failure_weight_gain(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: yesterday morning's weight, evaluated when it arrived
    enrolled(patient, "heart_failure")
    clock.move_to(NOW - timedelta(days=1), tick=False)
    post(patient, item("weight", value=176, unit="lb"))
    assert evaluate(patient, django_capture_on_commit_callbacks) == []

    # when: this morning's, 3.8 lb (1.72 kg) heavier: above hf_gain_1_day's 0.9 kg
    clock.move_to(NOW, tick=False)
    post(patient, item("weight", value=179.8, unit="lb"))
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then
    assert alerts_of(patient) == [("weight_gain", "warning", "open", 1, "hf_gain_1_day", 1)]
    alert = Alert.objects.get(patient=patient)
    yesterday, today = Reading.objects.filter(patient=patient).order_by("measured_at")
    assert (alert.values, alert.reading_ids) == (
        {"change": 1.724, "from": yesterday.value, "to": today.value},
        [yesterday.pk, today.pk],
    )
    assert enqueued == [AlertEvent.objects.get(alert=alert).pk]


@pytest.mark.django_db
def test_readings_that_meet_no_rule_raise_nothing_and_are_marked_evaluated(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes", "copd")
    post(patient, glucose(NORMAL_GLUCOSE), item("spo2", value=94), item("heart_rate", value=72))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued, pending(patient)) == ([], [], [], 0)


# --- Boundaries -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("protocol", "kind", "value", "expected"),
    [
        # blood_glucose.thresholds: exactly 54 mg/dL is level 1 (>= 54), not level 2 (< 54)
        ("diabetes", "glucose", HYPO_1["lower"]["value"],
         [("glucose_low", "warning", "open", 1, "hypoglycemia_level_1", 1)]),
        ("diabetes", "glucose", HYPO_1["lower"]["value"] - 1,
         [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]),
        # exactly 70 mg/dL is no hypoglycaemia (level 1 is < 70)
        ("diabetes", "glucose", HYPO_1["upper"]["value"], []),
        # spo2.thresholds.spo2_copd_warning: SpO2 <= 87 % -> exactly 87 is a warning, 88 nothing
        ("copd", "spo2", SPO2_COPD_WARNING,
         [("spo2_low", "warning", "open", 1, "spo2_copd_warning", 1)]),
        ("copd", "spo2", SPO2_COPD_WARNING + 1, []),
        # inr.target_ranges.0: 2.0 and 3.0 are in range
        ("anticoagulation", "inr", INR_RANGE["low"], []),
        ("anticoagulation", "inr", INR_RANGE["high"], []),
    ],
    ids=[
        "glucose 54 is level 1", "glucose 53 is level 2", "glucose 70 is no hypo",
        "SpO2 87 is a COPD warning", "SpO2 88 is in the COPD target",
        "INR 2.0 is in range", "INR 3.0 is in range",
    ],
)  # fmt: skip
def test_a_reading_exactly_at_a_reference_boundary(
    protocol, kind, value, expected, patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, protocol)
    post(patient, item(kind, value=value, **({"unit": "mg/dL"} if kind == "glucose" else {})))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == expected
    assert pending(patient) == 0


# --- Grouping: one alert per problem, the highest severity ----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("protocol", "kind", "value", "expected"),
    [
        # hyperglycemia_level_2 (warning, > 250) and hyperglycemia_critical_default (> 400)
        ("diabetes", "glucose", HYPER_CRITICAL["lower"]["value"] + 50,
         ("glucose_high", "critical", "open", 1, "hyperglycemia_critical_default", 1)),
        # hr_high_warning (>= 111) and hr_high_critical (>= 131)
        ("copd", "heart_rate", HR_HIGH_CRITICAL,
         ("heart_rate_high", "critical", "open", 1, "hr_high_critical", 1)),
        # inr_critical (>= 5), inr_gt_10 (> 10) and the NICE marker (any INR >= 8): the
        # furthest tier of the problem names the alert (the reference ties > 10 to vitamin K)
        ("anticoagulation", "inr", INR_ABOVE_10 + 1,
         ("inr_high", "critical", "open", 1, "inr_gt_10", 1)),
    ],
    ids=["glucose above 400", "heart rate 131", "INR 11"],
)  # fmt: skip
def test_several_rules_firing_on_one_reading_raise_one_alert_with_the_highest_severity(
    protocol, kind, value, expected, patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, protocol)
    post(patient, item(kind, value=value, **({"unit": "mg/dL"} if kind == "glucose" else {})))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [expected]
    assert [kind for _, kind, _ in events_of(patient)] == ["raised"]
    assert len(enqueued) == 1


@pytest.mark.django_db
def test_repeated_low_readings_are_occurrences_of_one_alert_that_rises_to_the_worst(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: three level-1 lows in one upload
    enrolled(patient, "diabetes")
    post(patient, *[glucose(LOW_GLUCOSE, timedelta(hours=h)) for h in (3, 2, 1)])
    first = evaluate(patient, django_capture_on_commit_callbacks)
    assert alerts_of(patient) == [("glucose_low", "warning", "open", 3, "hypoglycemia_level_1", 1)]

    # when: a level-2 low and another level-1 low arrive later
    clock.move_to(NOW + timedelta(hours=2), tick=False)
    post(patient, glucose(HYPO_2["upper"]["value"] - 4, timedelta(minutes=50)))
    post(patient, glucose(LOW_GLUCOSE, timedelta(minutes=10)))
    second = evaluate(patient, django_capture_on_commit_callbacks)

    # then: still one alert, five occurrences, now critical and naming the level-2 rule
    assert alerts_of(patient) == [("glucose_low", "critical", "open", 5, "hypoglycemia_level_2", 1)]
    raised, severity_raised = AlertEvent.objects.filter(alert__patient=patient).order_by("id")
    assert [(e.kind, e.data) for e in (raised, severity_raised)] == [
        ("raised", {"severity": "warning", "rule_version": 1}),
        (
            "severity_raised",
            {
                "previous": "warning",
                "severity": "critical",
                "previous_title": "Level 1 hypoglycaemia",
                "title": "Level 2 hypoglycaemia",
                "previous_values": {"observed": f"{LOW_GLUCOSE} mg/dL"},
                "values": {"observed": f"{HYPO_2['upper']['value'] - 4} mg/dL"},
                "rule_version": 1,
            },
        ),
    ]
    assert (first, second) == ([raised.pk], [severity_raised.pk])


@pytest.mark.django_db
def test_a_normal_reading_that_arrives_late_does_not_clear_an_alert_raised_after_it(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: a low at 11:10 sent and evaluated first
    enrolled(patient, "diabetes")
    post(patient, glucose(LOW_GLUCOSE, timedelta(minutes=50)))
    evaluate(patient, django_capture_on_commit_callbacks)

    # when: a normal reading measured at 11:00 arrives after it
    post(patient, glucose(NORMAL_GLUCOSE, timedelta(hours=1)))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: the condition has not cleared (the low is the latest reading)
    alert = Alert.objects.get(patient=patient)
    assert (alert.occurrences, alert.condition_cleared_at) == (1, None)
    assert [kind for _, kind, _ in events_of(patient)] == ["raised"]

    # when: a normal reading after the low
    post(patient, glucose(NORMAL_GLUCOSE, timedelta(minutes=30)))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: now it has
    alert.refresh_from_db()
    assert alert.condition_cleared_at == NOW - timedelta(minutes=30)


@pytest.mark.django_db
def test_a_dose_taken_counts_its_own_slot_in_the_taking_rate(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: warfarin at 08:00 New York; the last four days' doses were never logged
    enrolled(patient, "anticoagulation")
    plan = MedicationPlanFactory(patient=patient)
    today = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)  # 08:00 EST, an hour after NOW
    for day in (4, 3, 2, 1):
        due = today - timedelta(days=day)
        SlotFactory(plan=plan, due_at=due, status="missed")
    SlotFactory(plan=plan, due_at=today)  # today's, open

    # when: today's dose is logged as taken and evaluated
    clock.move_to(today + timedelta(minutes=20), tick=False)
    taken = item("dose", timedelta(minutes=10), scheduled_for=today.isoformat())
    post(patient, taken)
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: 1 of 5 scheduled doses taken, the one just logged among them
    alert = Alert.objects.get(patient=patient, dedupe_key="dose_adherence")
    assert (alert.values, alert.detail) == (
        {"taking_percent": 20.0, "doses": 5},
        "1 of 5 doses taken in 7 days (20 %, below 80 %)",
    )


@pytest.mark.django_db
def test_a_weighing_that_is_both_a_daily_and_a_weekly_gain_is_one_occurrence(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: weights a week ago and yesterday, evaluated as they came
    enrolled(patient, "heart_failure")
    for days_ago, kg in ((7, 80.0), (1, 80.5)):
        clock.move_to(NOW - timedelta(days=days_ago), tick=False)
        post(patient, item("weight", value=kg, unit="kg"))
        evaluate(patient, django_capture_on_commit_callbacks)
    clock.move_to(NOW, tick=False)

    # when: 2.5 kg up on yesterday and 3 kg on the week (both above hf_gain_1_day / _1_week)
    post(patient, item("weight", value=83.0, unit="kg"))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then
    # The weekly limit is the further tier of the problem (2.3 kg past 0.9 kg): it names it.
    assert alerts_of(patient) == [("weight_gain", "warning", "open", 1, "hf_gain_1_week", 1)]


@pytest.mark.django_db
def test_a_second_weighing_on_the_same_day_adds_no_occurrence_to_the_days_gain(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "heart_failure")
    clock.move_to(NOW - timedelta(days=1), tick=False)
    post(patient, item("weight", value=80.0, unit="kg"))
    evaluate(patient, django_capture_on_commit_callbacks)
    clock.move_to(NOW, tick=False)
    post(patient, item("weight", timedelta(hours=1), value=81.5, unit="kg"))
    evaluate(patient, django_capture_on_commit_callbacks)

    # The same morning's gain, weighed again in the evening (the first weight of a day counts).
    clock.move_to(NOW + timedelta(hours=10), tick=False)
    post(patient, item("weight", timedelta(hours=1), value=81.9, unit="kg"))
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("weight_gain", "warning", "open", 1, "hf_gain_1_day", 1)]
    assert enqueued == []


# --- Inhibition -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_critical_inr_suppresses_the_outside_target_range_warning(
    patient, clock, django_capture_on_commit_callbacks
):
    # INR 5.0 is both outside 2.0–3.0 (warning) and critical (inr.thresholds.inr_critical).
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", value=INR_CRITICAL))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("inr_high", "critical", "open", 1, "inr_critical", 1)]
    assert [(key, kind) for key, kind, _ in events_of(patient)] == [("inr_high", "raised")]
    assert len(enqueued) == 1


@pytest.mark.django_db
def test_an_open_critical_inr_alert_suppresses_later_range_warnings_until_it_is_resolved(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    # given: a critical INR alert, then an INR just above range while it is open
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=5), value=INR_CRITICAL))
    evaluate(patient, django_capture_on_commit_callbacks)
    post(patient, item("inr", timedelta(hours=3), value=INR_RANGE["high"] + 0.5))
    suppressed = evaluate(patient, django_capture_on_commit_callbacks)
    # The above-range reading is the same problem (high INR): an occurrence, nobody paged.
    assert (alerts_of(patient), suppressed) == (
        [("inr_high", "critical", "open", 2, "inr_critical", 1)],
        [],
    )

    # when: the critical alert is resolved and the INR is above range again
    resolve_alert(alert=Alert.objects.get(patient=patient), user=physician, note="Dose held")
    post(patient, item("inr", timedelta(hours=1), value=INR_RANGE["high"] + 0.5))
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then
    assert alerts_of(patient) == [
        ("inr_high", "critical", "resolved", 2, "inr_critical", 1),
        ("inr_high", "warning", "open", 1, "inr_target_range", 1),
    ]
    assert len(enqueued) == 1


@pytest.mark.django_db
def test_a_critical_finding_does_not_suppress_warnings_on_other_metrics(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "copd")
    post(patient, item("heart_rate", value=HR_HIGH_CRITICAL), item("spo2", value=SPO2_COPD_WARNING))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert sorted(alerts_of(patient)) == [
        ("heart_rate_high", "critical", "open", 1, "hr_high_critical", 1),
        ("spo2_low", "warning", "open", 1, "spo2_copd_warning", 1),
    ]


# --- Stale data -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stale_critical_reading_raises_an_alert_marked_late_with_its_measured_time(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: a phone offline for days uploads a level-2 low measured before the stale age
    enrolled(patient, "diabetes")
    stale = settings.VIGIL_STALE_READING_AGE + timedelta(minutes=1)
    post(patient, glucose(HYPO_2["upper"]["value"] - 10, stale))

    # when
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the team reviews it, told when it was measured
    measured = (NOW - stale).astimezone(patient.zone)
    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.title, alert.values, len(enqueued)) == (
        "critical",
        f"Late reading, measured {measured:%Y-%m-%d %H:%M %Z}: Level 2 hypoglycaemia",
        {
            "observed": f"{HYPO_2['upper']['value'] - 10} mg/dL",
            "late": True,
            "measured": f"{measured:%Y-%m-%d %H:%M %Z}",
        },
        1,
    )
    assert list(Reading.objects.filter(patient=patient).values_list("evaluated_at", flat=True)) == [
        NOW
    ]


@pytest.mark.django_db
def test_a_stale_warning_raises_nothing_but_is_marked_evaluated(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    stale = settings.VIGIL_STALE_READING_AGE + timedelta(minutes=1)
    post(patient, glucose(LOW_GLUCOSE, stale))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued) == ([], [], [])
    assert list(Reading.objects.filter(patient=patient).values_list("evaluated_at", flat=True)) == [
        NOW
    ]


@pytest.mark.django_db
def test_a_reading_exactly_the_stale_age_old_still_alerts(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    post(patient, glucose(HYPO_2["upper"]["value"] - 10, settings.VIGIL_STALE_READING_AGE))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]


# --- Silences -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_silenced_patients_alert_is_recorded_but_nobody_is_notified(
    patient, nurse, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    Silence.objects.create(
        patient=patient, starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=8),
        author=nurse, reason="Admitted to hospital overnight",
    )  # fmt: skip
    post(patient, glucose(HYPO_2["upper"]["value"] - 10))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]
    assert [kind for _, kind, _ in events_of(patient)] == ["raised"]
    assert enqueued == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule_key", "starts", "ends"),
    [
        ("hyperglycemia_level_2", -timedelta(hours=2), timedelta(hours=2)),
        (None, -timedelta(hours=2), -timedelta(minutes=1)),
        (None, timedelta(minutes=30), timedelta(hours=2)),
        (None, -timedelta(hours=2), timedelta(0)),
    ],
    ids=[
        "a silence of another rule", "a silence that has ended", "a silence not yet started",
        "a silence ending this very moment",
    ],
)  # fmt: skip
def test_a_silence_that_does_not_cover_the_alert_lets_it_be_routed(
    rule_key, starts, ends, patient, nurse, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    Silence.objects.create(
        patient=patient,
        rule=Rule.objects.get(patient=patient, key=rule_key) if rule_key else None,
        starts_at=NOW + starts,
        ends_at=NOW + ends,
        author=nurse,
        reason="Review",
    )
    post(patient, glucose(HYPO_2["upper"]["value"] - 10))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert enqueued == [AlertEvent.objects.get(alert__patient=patient).pk]


@pytest.mark.django_db
def test_a_silence_of_the_rule_that_fired_mutes_that_alert(
    patient, nurse, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    Silence.objects.create(
        patient=patient, rule=Rule.objects.get(patient=patient, key="hypoglycemia_level_2"),
        starts_at=NOW - timedelta(hours=1), ends_at=NOW + timedelta(hours=1), author=nurse,
        reason="Sensor on the arm the patient sleeps on",
    )  # fmt: skip
    post(patient, glucose(HYPO_2["upper"]["value"] - 10))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == [("glucose_low", "critical", "open", 1, "hypoglycemia_level_2", 1)]
    assert enqueued == []


# --- Per-patient values win -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_tailored_rule_beats_the_default_and_the_alert_records_its_version(
    team, physician, clock, django_capture_on_commit_callbacks
):
    # given: two diabetes patients; one's level-1 limit raised to < 80 mg/dL
    tailored, default = PatientFactory.create_batch(2, care_team=team)
    enrolled(tailored, "diabetes")
    enrolled(default, "diabetes")
    higher = {
        "conditions": [
            {"component": "value", "op": "ge", "value": HYPO_1["lower"]["value"]},
            {"component": "value", "op": "lt", "value": 80},
        ],
        "match": "all",
    }
    change_rule(
        rule=Rule.objects.get(patient=tailored, key="hypoglycemia_level_1"),
        user=physician,
        parameters=higher,
    )
    between = HYPO_1["upper"]["value"] + 5  # 75 mg/dL: low for one of them only

    # when
    post(tailored, glucose(between))
    post(default, glucose(between))
    evaluate(tailored, django_capture_on_commit_callbacks)
    evaluate(default, django_capture_on_commit_callbacks)

    # then
    assert alerts_of(tailored) == [("glucose_low", "warning", "open", 1, "hypoglycemia_level_1", 2)]
    assert Alert.objects.get(patient=tailored).rule_parameters == higher
    assert [data for _, _, data in events_of(tailored)] == [
        {"severity": "warning", "rule_version": 2}
    ]
    assert alerts_of(default) == []


@pytest.mark.django_db
def test_a_loosened_rule_stays_quiet_where_the_default_would_alert(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    # A COPD patient whose usual saturation is 86 %: the clinician sets the warning at <= 85.
    enrolled(patient, "copd")
    change_rule(
        rule=Rule.objects.get(patient=patient, key="spo2_copd_warning"),
        user=physician,
        parameters={"conditions": [{"component": "value", "op": "le", "value": 85}]},
    )
    post(patient, item("spo2", value=SPO2_COPD_WARNING - 1))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert (alerts_of(patient), events_of(patient), enqueued, pending(patient)) == ([], [], [], 0)


@pytest.mark.django_db
def test_an_open_alert_fired_again_by_its_tailored_rule_records_the_new_version(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    # given: an open level-1 alert raised by the default (version 1)
    enrolled(patient, "diabetes")
    post(patient, glucose(LOW_GLUCOSE, timedelta(hours=3)))
    evaluate(patient, django_capture_on_commit_callbacks)
    level_1 = Rule.objects.get(patient=patient, key="hypoglycemia_level_1")
    higher = level_1.parameters | {
        "conditions": [
            {"component": "value", "op": "ge", "value": HYPO_1["lower"]["value"]},
            {"component": "value", "op": "lt", "value": 80},
        ]
    }

    # when: the clinician raises the limit and a 75 mg/dL reading fires the new version
    change_rule(rule=level_1, user=physician, parameters=higher)
    post(patient, glucose(HYPO_1["upper"]["value"] + 5))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: the new version is recorded; the values stay those of the worse (lower) reading
    alert = Alert.objects.get(patient=patient)
    assert (alert.occurrences, alert.rule_version, alert.rule_parameters, alert.values) == (
        2,
        2,
        higher,
        {"observed": f"{LOW_GLUCOSE} mg/dL"},
    )


@pytest.mark.django_db
def test_a_switched_off_rule_raises_nothing(
    patient, physician, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "copd")
    for key in ("spo2_copd_warning", "spo2_copd_critical"):
        change_rule(rule=Rule.objects.get(patient=patient, key=key), user=physician, active=False)
    post(patient, item("spo2", value=SPO2_COPD_WARNING - 10))

    evaluate(patient, django_capture_on_commit_callbacks)

    assert alerts_of(patient) == []


# --- Idempotency ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_evaluating_again_changes_nothing(patient, clock, django_capture_on_commit_callbacks):
    # given: an evaluated upload that raised alerts on several metrics
    enrolled(patient, "diabetes", "copd")
    upload = [
        glucose(LOW_GLUCOSE, timedelta(hours=2)),
        glucose(HYPO_2["upper"]["value"] - 4),
        item("spo2", value=SPO2_COPD_WARNING),
        item("heart_rate", value=HR_HIGH_CRITICAL),
    ]
    post(patient, *upload)
    evaluate(patient, django_capture_on_commit_callbacks)
    before = snapshot(patient)
    assert len(before[0]) == 3

    # when: the task runs again (redelivery), later; the app re-sends the same upload, and
    # the task runs once more
    clock.move_to(NOW + timedelta(minutes=5), tick=False)
    with django_capture_on_commit_callbacks() as callbacks:
        counts = [evaluate_pending_readings(patient_id=patient.pk)]
        resent = record_readings(patient=patient, items=upload)
        counts.append(evaluate_pending_readings(patient_id=patient.pk))

    # then
    assert (resent.created, resent.count("duplicate")) == (0, len(upload))
    assert (counts, callbacks) == ([0, 0], [])
    assert snapshot(patient) == before


# --- Bounded queries ------------------------------------------------------------------------


def mixed_upload(per_metric: int) -> list[dict]:
    """Readings of five metrics over the last 20 hours; the same alerts fire whatever the size:
    level-1 lows (glucose) and the COPD SpO2 warning, with weight, BP and pulse normal."""
    step = timedelta(hours=20) / per_metric
    items = []
    for i in range(per_metric):
        before = timedelta(minutes=5) + step * i
        items += [
            glucose(LOW_GLUCOSE, before),
            item("spo2", before, value=SPO2_COPD_WARNING),
            item("heart_rate", before, value=72),
            item("weight", before, value=80.0, unit="kg"),
            item("blood_pressure", before, systolic=124, diastolic=78),
        ]
    return items


@pytest.mark.django_db
def test_evaluation_makes_as_many_queries_for_200_readings_as_for_one_per_metric(
    team, clock, django_assert_max_num_queries
):
    # given: the same patient set-up twice, one with 5 pending readings, one with 200
    few, many = PatientFactory.create_batch(2, care_team=team)
    for patient in (few, many):
        enrolled(patient, "heart_failure", "hypertension", "diabetes", "copd")
    post(few, *mixed_upload(1))
    post(many, *mixed_upload(40))
    with CaptureQueriesContext(connection) as baseline:
        assert evaluate_pending_readings(patient_id=few.pk) == 5

    # when / then
    with django_assert_max_num_queries(len(baseline)):
        assert evaluate_pending_readings(patient_id=many.pk) == 200
    assert sorted(a[:2] for a in alerts_of(many)) == sorted(a[:2] for a in alerts_of(few))
    assert sorted(a[:4] for a in alerts_of(many)) == [
        ("glucose_low", "warning", "open", 40),
        ("spo2_low", "warning", "open", 40),
    ]


# --- Two workers at once --------------------------------------------------------------------


@pytest.fixture
def notifications_queue(broker):
    """The 'notifications' queue (alert routing), empty at the start and purged afterwards.
    Transactional tests commit, so their on-commit publishes reach the real broker."""
    queue = BrokerQueue(broker, "notifications")
    queue.purge()
    yield queue
    queue.purge()


def concurrency_upload() -> list[dict]:
    return [
        glucose(LOW_GLUCOSE, timedelta(hours=4)),
        glucose(HYPO_2["upper"]["value"] - 4, timedelta(hours=3)),
        glucose(LOW_GLUCOSE, timedelta(hours=2)),
        item("spo2", timedelta(hours=2), value=SPO2_COPD_WARNING),
        item("spo2", timedelta(hours=1), value=SPO2_COPD_WARNING - 1),
        item("heart_rate", timedelta(hours=1), value=HR_HIGH_CRITICAL),
    ]


def comparable_alerts(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.rule.key, a.rule_version,
         a.first_triggered_at, a.last_triggered_at, a.values, a.reading_ids != [])
        for a in Alert.objects.filter(patient=patient).select_related("rule").order_by("dedupe_key")
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluating_one_patient_at_once_make_the_alerts_one_worker_makes(
    team, clock, notifications_queue, evaluation_queue, run_concurrently
):
    # given: two patients with the same upload
    raced, alone = PatientFactory.create_batch(2, care_team=team)
    for patient in (raced, alone):
        enrolled(patient, "diabetes", "copd")
        post(patient, *concurrency_upload())

    # when: two workers take the raced patient at the same moment, one worker the other
    counts = run_concurrently(
        lambda: evaluate_pending_readings(patient_id=raced.pk),
        lambda: evaluate_pending_readings(patient_id=raced.pk),
    )
    assert evaluate_pending_readings(patient_id=alone.pk) == 6

    # then: the readings were evaluated once, and the alerts are the same as one worker's
    assert sorted(counts) == [0, 6]
    assert comparable_alerts(raced) == comparable_alerts(alone)
    assert [alert[:4] for alert in comparable_alerts(raced)] == [
        ("glucose_low", "critical", "open", 3),
        ("heart_rate_high", "critical", "open", 1),
        ("spo2_low", "warning", "open", 2),
    ]
    assert [kind for _, kind, _ in events_of(raced)] == [kind for _, kind, _ in events_of(alone)]
    assert pending(raced) == 0
    # one routing per alert event of either patient: nobody is paged twice by the race
    routings = [task.args[0] for task in notifications_queue.tasks()]
    assert sorted(routings) == sorted(
        AlertEvent.objects.filter(alert__patient__in=[raced, alone]).values_list("pk", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_with_different_uploads_of_one_patient_count_every_occurrence_once(
    team, clock, notifications_queue, evaluation_queue, run_concurrently
):
    # given: two uploads of the same patient, each about to be evaluated by its own worker
    patient = PatientFactory(care_team=team)
    enrolled(patient, "diabetes")
    post(patient, *[glucose(LOW_GLUCOSE, timedelta(hours=h)) for h in (6, 5, 4)])

    def upload_then_evaluate():
        post(patient, *[glucose(LOW_GLUCOSE, timedelta(hours=h)) for h in (3, 2)])
        return evaluate_pending_readings(patient_id=patient.pk)

    # when
    counts = run_concurrently(
        lambda: evaluate_pending_readings(patient_id=patient.pk), upload_then_evaluate
    )

    # then: five lows, five occurrences of one alert raised once
    assert sum(counts) == 5
    assert alerts_of(patient) == [("glucose_low", "warning", "open", 5, "hypoglycemia_level_1", 1)]
    assert [kind for _, kind, _ in events_of(patient)] == ["raised"]
    assert len(notifications_queue) == 1
    assert pending(patient) == 0


# --- Scheduled rules: missing data and summaries -------------------------------------------


def scheduled_keys(claimed: dict, patient) -> list[str]:
    return sorted(
        Rule.objects.filter(pk__in=claimed.get(patient.pk, [])).values_list("key", flat=True)
    )


@pytest.mark.django_db
def test_each_due_scheduled_rule_is_claimed_once_even_when_the_sweep_runs_twice(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: summaries are due at once, missing-data checks after their silence
    enrolled(patient, "diabetes", "anticoagulation")
    summaries = sorted(
        t.key
        for code in ("diabetes", "anticoagulation")
        for t in protocol_templates()[code]
        if t.kind in ("cgm_summary", "inr_ttr")
    )

    # when
    first = claim_due_scheduled_rules(now=NOW)
    second = claim_due_scheduled_rules(now=NOW)

    # then
    assert scheduled_keys(first, patient) == summaries
    assert second == {}
    # an interval later they are due again
    later = claim_due_scheduled_rules(now=NOW + settings.VIGIL_SUMMARY_CHECK_INTERVAL)
    assert scheduled_keys(later, patient) == summaries


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_claim_each_due_rule_once(team, clock, run_concurrently):
    patients = PatientFactory.create_batch(3, care_team=team)
    for patient in patients:
        enrolled(patient, "diabetes")
    due = set(Rule.objects.filter(next_check_at__lte=NOW, active=True).values_list("pk", flat=True))

    first, second = run_concurrently(
        lambda: claim_due_scheduled_rules(now=NOW), lambda: claim_due_scheduled_rules(now=NOW)
    )

    claimed = [rule_id for result in (first, second) for ids in result.values() for rule_id in ids]
    assert sorted(claimed) == sorted(due)


@pytest.mark.django_db
def test_the_sweep_enqueues_one_evaluation_per_patient_with_its_due_rules(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    ttr = Rule.objects.get(patient=patient, key="inr_ttr_rosendaal")

    with django_capture_on_commit_callbacks() as callbacks:
        count = enqueue_due_scheduled_rules(now=NOW)

    assert count == 1
    assert [(c.task, c.args) for c in callbacks] == [
        (evaluate_scheduled_rules_task, (patient.pk, [ttr.pk]))
    ]


@pytest.mark.django_db
def test_silence_past_the_missing_data_limit_raises_an_alert_that_the_next_reading_clears(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: a heart-failure patient enrolled at NOW who never weighs
    enrolled(patient, "heart_failure")
    limit = timedelta(hours=template("weight_missing").parameters["silent_hours"])
    assert claim_due_scheduled_rules(now=NOW + limit - timedelta(minutes=1)) == {}

    # when: the sweep runs once the limit has passed
    clock.move_to(NOW + limit, tick=False)
    claimed = claim_due_scheduled_rules()
    with django_capture_on_commit_callbacks() as callbacks:
        findings = evaluate_scheduled_rules(patient_id=patient.pk, rule_ids=claimed[patient.pk])

    # then
    assert (scheduled_keys(claimed, patient), findings) == (["weight_missing"], 1)
    alert = Alert.objects.get(patient=patient)
    assert alerts_of(patient) == [("weight_missing", "warning", "open", 1, "weight_missing", 1)]
    assert (alert.first_triggered_at, alert.condition_cleared_at) == (NOW + limit, None)
    assert routed(callbacks) == [AlertEvent.objects.get(alert=alert).pk]

    # when: the patient weighs an hour later
    clock.move_to(NOW + limit + timedelta(hours=1), tick=False)
    post(patient, item("weight", timedelta(minutes=5), value=80.0, unit="kg"))
    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the alert stays for a person to resolve, marked as no longer holding
    weighed_at = NOW + limit + timedelta(minutes=55)
    alert.refresh_from_db()
    assert (alert.status, alert.occurrences, alert.condition_cleared_at) == (
        "open",
        1,
        weighed_at,
    )
    assert [(kind, data) for _, kind, data in events_of(patient)] == [
        ("raised", {"severity": "warning", "rule_version": 1}),
        ("condition_cleared", {}),
    ]
    assert enqueued == []
    # the sweep's deadline (the limit after its check) is kept: it is earlier than the limit
    # after this weighing and more than half the limit after it, so the sweep checks early,
    # sees the weighing and moves the deadline itself
    assert Rule.objects.get(patient=patient, key="weight_missing").next_check_at == (
        NOW + 2 * limit
    )


def cgm_upload(count: int) -> list[dict]:
    """`count` CGM readings spread over the last 14 days, one in ten at 54 mg/dL (below 70,
    not below 54): time below 70 mg/dL is 10 %, above its < 4 % target."""
    span = timedelta(days=14)
    step = span / count
    low = reference("blood_glucose.cgm_targets.ranges_mg_dL")["low"]["lower"]["value"]
    return [
        glucose(low if i % 10 == 0 else NORMAL_GLUCOSE, span - step * (i + 1) + step / 2)
        for i in range(count)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("count", "expected"),
    [
        # data_sufficiency example: 4032 possible 5-min readings in 14 days -> need >= 2823
        (2823, [("cgm_below_range", "warning", "open", 1, "cgm_tbr_lt70", 1)]),
        (2822, []),
    ],
    ids=["70 % of the possible readings", "69.99 % of them"],
)
def test_a_cgm_summary_alert_needs_sufficient_data(
    count, expected, patient, clock, django_capture_on_commit_callbacks
):
    # given: a diabetes patient enrolled two weeks ago, with two weeks of CGM data
    clock.move_to(NOW - timedelta(days=15), tick=False)
    enrolled(patient, "diabetes")
    clock.move_to(NOW, tick=False)
    post(patient, *cgm_upload(count))

    # when
    claimed = claim_due_scheduled_rules()
    with django_capture_on_commit_callbacks() as callbacks:
        evaluate_scheduled_rules(patient_id=patient.pk, rule_ids=claimed[patient.pk])

    # then
    assert alerts_of(patient) == expected
    assert len(routed(callbacks)) == len(expected)
    if expected:
        assert Alert.objects.get(patient=patient).values == {"percent": 10.0, "readings": count}


@pytest.mark.django_db
def test_an_inr_between_4_5_and_10_is_one_warning_alert_not_two(
    patient, clock, django_capture_on_commit_callbacks
):
    # 4.7 is outside 2.0–3.0 and inside inr.thresholds.inr_4_5_to_10 (hold or reduce the
    # dose): both warnings feed the high-INR alert, so the team sees one problem once.
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", value=4.7))

    enqueued = evaluate(patient, django_capture_on_commit_callbacks)

    assert [(key, severity, status, n) for key, severity, status, n, *_ in alerts_of(patient)] == [
        ("inr_high", "warning", "open", 1)
    ]
    assert len(enqueued) == 1


@pytest.mark.django_db
def test_a_lesser_finding_counts_as_an_occurrence_without_replacing_the_values_shown(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: an open critical level-2 hypoglycaemia alert for 50 mg/dL
    enrolled(patient, "diabetes")
    post(patient, glucose(50, timedelta(hours=2)))
    evaluate(patient, django_capture_on_commit_callbacks)
    shown = Alert.objects.get(patient=patient).values

    # when: a level-1 reading (60 mg/dL) folds into the same alert
    post(patient, glucose(60, timedelta(hours=1)))
    evaluate(patient, django_capture_on_commit_callbacks)

    # then: one more occurrence; severity, title and values still describe the 50
    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.occurrences, alert.title) == (
        "critical",
        2,
        "Level 2 hypoglycaemia",
    )
    assert alert.values == shown == {"observed": "50 mg/dL"}
