"""Alerts at the edges (monitoring/evaluation/outcomes.py with the lifecycle): one clinical
problem never hides or clears another, an alert tells the worst finding it absorbed, late
critical data is reviewed.

Each test is a situation a clinic met: readings in through record_readings, evaluated as the
worker does, exact alerts and events out. Clinical numbers come from the clinical reference.
"""

from datetime import timedelta

import pytest
from django.conf import settings

from alerts.lifecycle import acknowledge_alert
from alerts.models import Alert, AlertEvent
from alerts.notify import unrouted_alert_events
from monitoring.display import format_instant
from tests.monitoring.evaluation.helpers import (
    HYPER_CRITICAL,
    HYPO_1,
    HYPO_2,
    INR_ABOVE_10,
    INR_CRITICAL,
    INR_RANGE,
    NOW,
    enrolled,
    evaluate,
    glucose,
    item,
    post,
)
from tests.monitoring.rules.conftest import reference, stated_limit

BP_CRISIS = reference("blood_pressure.thresholds.bp_crisis")  # > 180 or > 120
HYPOTENSION = reference("blood_pressure.thresholds.hypotension")  # < 90 or < 60
STAGE_2_AVERAGE = reference("blood_pressure.thresholds.bp_home_avg_stage2_like")  # >= 145/90
INR_NICE_ANY = 8.0  # inr.thresholds.inr_nice_high_marker: "any INR >= 8" (checked below)
SPO2_COPD_CRITICAL = stated_limit("spo2.thresholds.spo2_copd_critical")  # <= 83 %


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


def test_the_nice_marker_limit_is_the_reference_s():
    assert "any INR >= 8" in reference("inr.thresholds.inr_nice_high_marker")["rule"]


def alerts(patient) -> list[tuple]:
    return [
        (a.dedupe_key, a.severity, a.status, a.occurrences, a.title, a.values)
        for a in Alert.objects.filter(patient=patient).order_by("id")
    ]


def event_kinds(alert: Alert) -> list[str]:
    return list(
        AlertEvent.objects.filter(alert=alert).order_by("id").values_list("kind", flat=True)
    )


# --- 1. An open critical never hides the opposite problem -----------------------------------


@pytest.mark.django_db
def test_lows_after_an_open_very_high_glucose_raise_their_own_low_alert(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: a very high glucose, critical and open
    enrolled(patient, "diabetes")
    very_high = HYPER_CRITICAL["lower"]["value"] + 1
    post(patient, glucose(very_high, timedelta(hours=3)))
    evaluate(patient, django_capture_on_commit_callbacks)

    # when: two level-1 lows follow
    post(patient, glucose(60, timedelta(hours=2)), glucose(55, timedelta(hours=1)))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    # then: a low alert of its own, showing the worse of the two lows, paged once
    assert alerts(patient) == [
        (
            "glucose_high",
            "critical",
            "open",
            1,
            "Glucose is above 400 mg/dL",
            {"observed": "401 mg/dL"},
        ),
        (
            "glucose_low",
            "warning",
            "open",
            2,
            "Glucose is at or above 54 mg/dL and below 70 mg/dL",
            {"observed": "55 mg/dL"},
        ),
    ]
    assert len(paged) == 1
    assert HYPO_1["lower"]["value"] <= 55 < HYPO_1["upper"]["value"]


@pytest.mark.django_db
def test_a_subtherapeutic_inr_after_an_open_critical_inr_raises_a_low_inr_alert(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=3), value=5.5))
    evaluate(patient, django_capture_on_commit_callbacks)

    post(patient, item("inr", timedelta(hours=1), value=1.6))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    assert [
        (key, severity, status, n, title) for key, severity, status, n, title, _ in alerts(patient)
    ] == [
        ("inr_high", "critical", "open", 1, "INR is at or above 5"),
        ("inr_low", "warning", "open", 1, "INR is below 2 or above 3"),
    ]
    assert Alert.objects.get(dedupe_key="inr_low").values == {"observed": "1.6"}
    assert len(paged) == 1
    assert INR_RANGE["low"] > 1.6 and INR_CRITICAL <= 5.5


@pytest.mark.django_db
def test_hypotension_after_an_open_hypertensive_crisis_raises_a_low_bp_alert(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "hypertension")
    post(patient, item("blood_pressure", timedelta(hours=3), systolic=185, diastolic=100))
    evaluate(patient, django_capture_on_commit_callbacks)

    post(patient, item("blood_pressure", timedelta(hours=1), systolic=85, diastolic=55))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    assert [(key, severity, n, title) for key, severity, _, n, title, _ in alerts(patient)] == [
        ("bp_high", "critical", 1, "Systolic is above 180 mmHg or diastolic is above 120 mmHg"),
        ("bp_low", "warning", 1, "Systolic is below 90 mmHg or diastolic is below 60 mmHg"),
    ]
    assert len(paged) == 1
    assert BP_CRISIS["systolic_gt"] < 185 and HYPOTENSION["systolic_lt"] > 85


# --- 2. Clearing is decided before inhibition, in measured order ----------------------------


@pytest.mark.django_db
def test_a_worse_inr_is_never_taken_for_the_condition_clearing(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: INR 3.5 raises the above-range warning
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=3), value=3.5))
    evaluate(patient, django_capture_on_commit_callbacks)

    # when: INR 10.5 follows
    post(patient, item("inr", timedelta(hours=1), value=10.5))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the same high-INR alert, now critical and naming the furthest tier, not cleared
    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.title, alert.values, alert.condition_cleared_at) == (
        "critical",
        "INR is above 10",
        {"observed": "10.5"},
        None,
    )
    assert event_kinds(alert) == ["raised", "severity_raised"]
    assert len(paged) == 1
    assert INR_ABOVE_10 < 10.5


@pytest.mark.django_db
def test_an_in_range_reading_in_the_same_batch_after_the_one_that_fired_clears_the_alert(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    post(
        patient,
        item("inr", timedelta(hours=3), value=10.5),
        item("inr", timedelta(hours=1), value=2.5),
    )

    evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.condition_cleared_at) == ("critical", NOW - timedelta(hours=1))
    assert event_kinds(alert) == ["raised", "condition_cleared"]


@pytest.mark.django_db
def test_an_in_range_reading_measured_before_the_one_that_fired_clears_nothing(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    post(
        patient,
        item("inr", timedelta(hours=3), value=2.5),
        item("inr", timedelta(hours=1), value=10.5),
    )

    evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient)
    assert (alert.condition_cleared_at, event_kinds(alert)) == (None, ["raised"])


@pytest.mark.django_db
def test_a_low_inr_clears_the_high_inr_alert_and_raises_its_own(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=3), value=3.5))
    evaluate(patient, django_capture_on_commit_callbacks)

    post(patient, item("inr", timedelta(hours=1), value=1.6))
    evaluate(patient, django_capture_on_commit_callbacks)

    high, low = Alert.objects.filter(patient=patient).order_by("id")
    assert (high.dedupe_key, high.condition_cleared_at) == ("inr_high", NOW - timedelta(hours=1))
    assert (low.dedupe_key, low.condition_cleared_at, low.status) == ("inr_low", None, "open")


# --- 3. The alert tells the worst that happened, exactly ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("protocol", "reading", "expected"),
    [
        # 53.9 mg/dL is level 2 (< 54): shown as measured, not rounded onto the limit
        ("diabetes", {"type": "glucose", "value": 53.9, "unit": "mg/dL"},
         ("critical", {"observed": "53.9 mg/dL"})),
        # 83.4 % is a warning (<= 87), not the critical limit (<= 83) it would round to
        ("copd", {"type": "spo2", "value": 83.4}, ("warning", {"observed": "83.4 %"})),
        # INR 4.99 is below the critical 5.0 it would round to
        ("anticoagulation", {"type": "inr", "value": 4.99}, ("warning", {"observed": "4.99"})),
    ],
    ids=["glucose 53.9", "SpO2 83.4", "INR 4.99"],
)  # fmt: skip
def test_a_value_next_to_a_limit_is_shown_with_the_precision_that_keeps_its_side(
    protocol, reading, expected, patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, protocol)
    post(patient, item(reading.pop("type"), **reading))

    evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.values) == expected
    assert expected[1]["observed"] in alert.detail
    assert SPO2_COPD_CRITICAL < 83.4 and HYPO_2["upper"]["value"] > 53.9


@pytest.mark.django_db
def test_a_further_tier_at_the_same_severity_moves_the_alert_and_pages_again(
    patient, nurse, clock, django_capture_on_commit_callbacks
):
    # given: INR 8 (the NICE any-INR marker, critical), acknowledged by the nurse
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=3), value=INR_NICE_ANY))
    evaluate(patient, django_capture_on_commit_callbacks)
    alert = Alert.objects.get(patient=patient)
    assert (alert.title, alert.values) == ("INR is at or above 8", {"observed": "8"})
    acknowledge_alert(alert=alert, user=nurse)

    # when: INR 10.5, past the > 10 limit the reference ties to oral vitamin K
    post(patient, item("inr", timedelta(hours=1), value=10.5))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the alert moves to it, re-opens and pages again as a new alert
    alert.refresh_from_db()
    assert (alert.severity, alert.status, alert.title, alert.values, alert.occurrences) == (
        "critical",
        "open",
        "INR is above 10",
        {"observed": "10.5"},
        2,
    )
    worsened = AlertEvent.objects.get(alert=alert, kind="worsened")
    assert worsened.data == {
        "previous": "critical",
        "severity": "critical",
        "previous_title": "INR is at or above 8",
        "title": "INR is above 10",
        "previous_values": {"observed": "8"},
        "values": {"observed": "10.5"},
        "rule_version": 1,
    }
    # (the second INR >= 5 within 6 months is also NICE's repeated-high marker: its own alert)
    repeated = AlertEvent.objects.get(alert__dedupe_key="inr_poor_control_high", kind="raised")
    assert paged == [worsened.pk, repeated.pk]
    assert alert.next_escalation_at == NOW + timedelta(
        minutes=patient.care_team.critical_escalation_minutes
    )


@pytest.mark.django_db
def test_a_lesser_reading_of_the_same_problem_adds_an_occurrence_and_overwrites_nothing(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "anticoagulation")
    post(patient, item("inr", timedelta(hours=3), value=10.5))
    evaluate(patient, django_capture_on_commit_callbacks)

    post(patient, item("inr", timedelta(hours=1), value=INR_NICE_ANY))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient, dedupe_key="inr_high")
    assert (alert.title, alert.values, alert.occurrences) == (
        "INR is above 10",
        {"observed": "10.5"},
        2,
    )
    # Only NICE's repeated-high marker (a second INR >= 5) pages, as its own alert.
    assert paged == [AlertEvent.objects.get(alert__dedupe_key="inr_poor_control_high").pk]
    assert event_kinds(alert) == ["raised"]


@pytest.mark.django_db
def test_a_reading_further_past_the_same_limit_moves_the_values_without_paging(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "diabetes")
    post(patient, glucose(60, timedelta(hours=3)))
    evaluate(patient, django_capture_on_commit_callbacks)

    post(patient, glucose(56, timedelta(hours=1)))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.values, alert.occurrences, paged) == (
        "warning",
        {"observed": "56 mg/dL"},
        2,
        [],
    )
    assert "56 mg/dL" in alert.detail
    assert event_kinds(alert) == ["raised"]


@pytest.mark.django_db
def test_a_seven_day_average_at_stage_2_level_is_titled_as_stage_2(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "hypertension")
    systolic = STAGE_2_AVERAGE["systolic_ge"] + 5
    post(
        patient,
        *[
            item("blood_pressure", timedelta(days=day, hours=1), systolic=systolic, diastolic=80)
            for day in range(4)
        ],
    )

    evaluate(patient, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(patient=patient, dedupe_key="bp_average")
    assert (alert.severity, alert.title) == (
        "warning",
        "The 7-day average systolic is at or above 145 mmHg or diastolic is at or above 90 mmHg",
    )


# --- 5. Late data is reviewed, not dropped --------------------------------------------------


@pytest.mark.django_db
def test_a_crisis_reading_uploaded_30_hours_late_raises_an_alert_marked_late(
    patient, clock, django_capture_on_commit_callbacks
):
    enrolled(patient, "hypertension")
    late = timedelta(hours=30)
    assert late > settings.VIGIL_STALE_READING_AGE
    post(patient, item("blood_pressure", late, systolic=204, diastolic=128))

    paged = evaluate(patient, django_capture_on_commit_callbacks)

    measured = f"{(NOW - late).astimezone(patient.zone):%Y-%m-%d %H:%M %Z}"
    alert = Alert.objects.get(patient=patient)
    assert (alert.severity, alert.title, alert.values) == (
        "critical",
        f"Late reading, measured {format_instant(NOW - late, patient.zone)}: "
        "Systolic is above 180 mmHg or diastolic is above 120 mmHg",
        {"observed": "204/128 mm[Hg]", "late": True, "measured": measured},
    )
    assert len(paged) == 1


@pytest.mark.django_db
def test_a_worse_average_inhibited_by_a_crisis_folds_into_its_alert_without_paging(
    patient, clock, django_capture_on_commit_callbacks
):
    # given: four days at 138 mmHg systolic: the 7-day average is above goal (warning)
    enrolled(patient, "hypertension")
    post(
        patient,
        *[
            item("blood_pressure", timedelta(days=day, hours=2), systolic=138, diastolic=80)
            for day in range(4)
        ],
    )
    evaluate(patient, django_capture_on_commit_callbacks)
    average = Alert.objects.get(patient=patient, dedupe_key="bp_average")
    assert (
        average.title
        == "The 7-day average systolic is at or above 135 mmHg or diastolic is at or above 85 mmHg"
    )

    # when: a crisis reading lifts the average to stage-2 level as well
    post(patient, item("blood_pressure", timedelta(hours=1), systolic=190, diastolic=100))
    paged = evaluate(patient, django_capture_on_commit_callbacks)

    # then: the crisis pages; the average's alert moves to stage 2 but pages nobody, and its
    # event is settled so the routing sweep never pages it later either
    average.refresh_from_db()
    assert (
        average.title
        == "The 7-day average systolic is at or above 145 mmHg or diastolic is at or above 90 mmHg"
    )
    worsened = AlertEvent.objects.get(alert=average, kind="worsened")
    crisis = AlertEvent.objects.get(alert__dedupe_key="bp_high", kind="raised")
    assert paged == [crisis.pk]
    assert worsened.routed_at == NOW
    # (the two raised events wait for their routing tasks, which this test does not run)
    assert set(unrouted_alert_events(now=NOW + timedelta(hours=1))) == {
        AlertEvent.objects.get(alert=average, kind="raised"),
        crisis,
    }
