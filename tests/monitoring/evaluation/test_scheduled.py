"""Scheduled rules (monitoring/evaluation/scheduled.py): missing data and summaries, claimed
by the sweep.

Clinical numbers come from the clinical reference (read in the test, or cited by path).
"""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from datetime import timedelta

import pytest
from django.conf import settings

from alerts.models import Alert, AlertEvent
from monitoring.evaluation import (
    claim_due_scheduled_rules,
    enqueue_due_scheduled_rules,
    evaluate_scheduled_rules,
)
from monitoring.models import Rule
from monitoring.protocols import protocol_templates
from monitoring.tasks import evaluate_scheduled_rules_task
from tests.factories import PatientFactory
from tests.monitoring.evaluation.helpers import (
    NORMAL_GLUCOSE,
    NOW,
    alerts_of,
    clock,  # noqa: F401
    enrolled,
    evaluate,
    events_of,
    glucose,
    item,
    post,
    routed,
)
from tests.monitoring.rules.conftest import reference, template

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
    not below 54): time below 70 mg/dL is 10 %, above its < 4 % target. Measured by the
    sensor (entry "device"): a typed-in glucose is a fingerstick, not CGM data."""
    span = timedelta(days=14)
    step = span / count
    low = reference("blood_glucose.cgm_targets.ranges_mg_dL")["low"]["lower"]["value"]
    return [
        glucose(
            low if i % 10 == 0 else NORMAL_GLUCOSE,
            span - step * (i + 1) + step / 2,
            entry="device",
        )
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
        "Glucose is below 54 mg/dL",
    )
    assert alert.values == shown == {"observed": "50 mg/dL"}
