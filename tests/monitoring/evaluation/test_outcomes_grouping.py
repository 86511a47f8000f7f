"""Readings in through record_readings, alerts out of evaluate_pending_readings, as
monitoring/evaluation/outcomes.py decides them: grouping, inhibition, silences.

Clinical numbers come from the clinical reference (read in the test, or cited by path).
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import resolve_alert
from alerts.models import Alert, AlertEvent, Silence
from monitoring.models import Rule
from tests.factories import MedicationPlanFactory, SlotFactory
from tests.monitoring.evaluation.helpers import (
    HR_HIGH_CRITICAL,
    HYPER_CRITICAL,
    HYPO_2,
    INR_ABOVE_10,
    INR_CRITICAL,
    INR_RANGE,
    LOW_GLUCOSE,
    NORMAL_GLUCOSE,
    NOW,
    SPO2_COPD_WARNING,
    alerts_of,
    clock,  # noqa: F401
    enrolled,
    evaluate,
    events_of,
    glucose,
    item,
    post,
)

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
                "previous_title": "Glucose is at or above 54 mg/dL and below 70 mg/dL",
                "title": "Glucose is below 54 mg/dL",
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
