import re
from dataclasses import replace

import pytest

from monitoring.rules import adherence
from monitoring.rules.base import (
    ON_READING,
    ON_SLOT_CLOSING,
    ClosedSlot,
    Context,
    InvalidParameters,
    PlannedDose,
)
from tests.monitoring.rules.conftest import (
    NEW_YORK,
    NOW,
    FakeRule,
    context,
    days,
    default_rule,
    dose,
    hours,
    reference,
    template,
)

DEFAULTS = reference("medication_adherence.dose_level_adherence.missed_dose_flag.alert_defaults")
# ">= 2 consecutive missed doses of a critical medication"
MISSED_IN_A_ROW = int(re.match(r">= (\d+) consecutive", DEFAULTS[0]["rule"])[1])
# "7-day taking adherence < 80%"
WINDOW_DAYS, BELOW_PERCENT = map(
    int, re.match(r"(\d+)-day .* < (\d+)%", DEFAULTS[1]["rule"]).groups()
)


def daily(statuses, medication="warfarin-5mg", last=None):
    """One dose a day in the order given, the last `last` (two hours ago unless told)."""
    last = last or NOW - hours(2)
    count = len(statuses)
    return [
        dose(last - days(count - 1 - i), status, medication) for i, status in enumerate(statuses)
    ]


def evaluate(key, doses, new=1, **rule_overrides):
    rule = default_rule(key, **rule_overrides)
    return adherence.evaluate(rule, context(doses[-new:], history=doses[:-new]))


# --- consecutive missed doses ---------------------------------------------------------------
# Evaluated when a slot closes (Kind.evaluate_slot; the whole path in
# tests/monitoring/nudges/test_escalation.py): the parameters, what watching means, the run.


def test_the_default_counts_as_many_missed_doses_in_a_row_as_the_reference_says():
    assert template("doses_missed_consecutively").parameters == {
        "mode": "consecutive_missed",
        "count": MISSED_IN_A_ROW,
        "medications": [],
    }


def test_doses_logged_as_skipped_are_not_missed_doses():
    # the reference's missed-dose flag: "not confirmed taken (and not explicitly skipped)"
    result = evaluate("doses_missed_consecutively", daily(["taken", "skipped", "skipped"]))

    assert (result.findings, result.cleared_at) == ([], None)


@pytest.mark.parametrize(
    ("medications", "medication", "critical", "watched"),
    [
        ([], "warfarin-5mg", True, True),  # the default: every critical plan
        ([], "atorvastatin-20mg", False, False),
        (["warfarin-5mg"], "warfarin-5mg", True, True),
        (["warfarin-5mg"], "insulin-glargine", True, False),  # a tailored list is the list
        (["atorvastatin-20mg"], "atorvastatin-20mg", False, True),
    ],
)
def test_a_rule_watches_critical_plans_unless_it_lists_its_medications(
    medications, medication, critical, watched
):
    parameters = {"mode": "consecutive_missed", "count": 2, "medications": medications}

    assert adherence.watches(parameters, medication=medication, critical=critical) is watched


def missed_slots(count, *, closes_at=NOW, subject="Warfarin 5 mg"):
    """A run of `count` daily dose slots closed unanswered, newest first, the last closing
    at `closes_at` (due two hours before it closes)."""
    return [
        ClosedSlot(
            id=100 + count - i,
            due_at=closes_at - days(i) - hours(2),
            closes_at=closes_at - days(i),
            subject=subject,
            of_plan=True,
            owner={"plan_id": 7, "medication": "warfarin-5mg"},
        )
        for i in range(count)
    ]


def on_slot_closing(rule, missed):
    return Context(now=NOW, zone=NEW_YORK, unit="", new=[], history=[], missed=missed)


def test_a_run_of_missed_slots_shorter_than_the_count_finds_nothing_when_a_slot_closes():
    rule = default_rule("doses_missed_consecutively")
    missed = missed_slots(MISSED_IN_A_ROW - 1)

    result = adherence.evaluate_slot(rule, on_slot_closing(rule, missed))

    assert (result.findings, result.cleared_at) == ([], None)


def test_a_run_of_missed_slots_as_long_as_the_count_is_found_from_its_first_miss():
    rule = default_rule("doses_missed_consecutively")
    missed = missed_slots(MISSED_IN_A_ROW + 1)

    [finding] = adherence.evaluate_slot(rule, on_slot_closing(rule, missed)).findings

    assert (finding.triggered_at, finding.since) == (NOW, missed[-1].closes_at)
    assert finding.detail == (
        f"Warfarin 5 mg: {MISSED_IN_A_ROW + 1} consecutive scheduled doses not logged; "
        "last due 1 Mar 2026, 05:00 EST"
    )
    assert finding.values == {
        "plan_id": 7,
        "medication": "warfarin-5mg",
        "missed": MISSED_IN_A_ROW + 1,
        "slot_ids": [slot.id for slot in reversed(missed)],
    }
    assert finding.placement.extremity == MISSED_IN_A_ROW + 1


def test_missed_slots_are_never_found_by_evaluating_readings():
    assert adherence.KIND.triggers == {ON_READING, ON_SLOT_CLOSING}
    assert not adherence.KIND.runs_on_missed_dose(template("doses_missed_consecutively").parameters)
    assert adherence.KIND.runs_on_missed_dose(template("dose_taking_rate_7_days").parameters)


# --- 7-day taking adherence -----------------------------------------------------------------


def test_the_taking_rate_default_is_the_references_window_and_percentage():
    parameters = template("dose_taking_rate_7_days").parameters

    assert (parameters["window_days"], parameters["below_percent"]) == (WINDOW_DAYS, BELOW_PERCENT)


def test_a_taking_rate_below_the_limit_is_an_info_finding():
    doses = daily(["taken", "skipped", "taken", "taken"])  # 75 %

    result = evaluate("dose_taking_rate_7_days", doses)

    assert [(f.severity, f.values, f.reading_ids) for f in result.findings] == [
        ("info", {"taking_percent": 75.0, "doses": 4}, ())
    ]


def test_a_taking_rate_of_exactly_the_limit_is_not_below_it():
    doses = daily(["taken", "taken", "skipped", "taken", "taken"])  # 80 %

    result = evaluate("dose_taking_rate_7_days", doses)

    assert (result.findings, result.cleared_at) == ([], doses[-1].measured_at)


def test_doses_scheduled_before_the_window_do_not_count():
    # Five missed doses more than 7 days ago, then a week of doses taken.
    old = [dose(NOW - days(WINDOW_DAYS) - days(i + 1), "skipped") for i in range(5)]
    recent = daily(["taken"] * 6)

    result = evaluate("dose_taking_rate_7_days", old[::-1] + recent)

    assert (result.findings, result.cleared_at) == ([], recent[-1].measured_at)


def planned(day_offsets_taken: list[bool], medication="warfarin-5mg"):
    """One scheduled dose a day, the last one two hours ago, taken or not, in order."""
    count = len(day_offsets_taken)
    doses = []
    for i, taken in enumerate(day_offsets_taken):
        due = NOW - hours(2) - days(count - 1 - i)
        doses.append(PlannedDose(medication, due, taken, due + hours(1 if taken else 2)))
    return doses


def test_scheduled_doses_never_logged_count_against_the_taking_rate():
    # the reference: taken / scheduled doses; 5 taken, 2 slots closed with nothing taken
    schedule = planned([True, False, True, True, False, True, True])
    logged = daily(["taken"] * 5)  # what the patient logged for the same plan

    result = adherence.taking_rate(
        default_rule("dose_taking_rate_7_days"),
        replace(context(logged[-1:], history=logged[:-1]), planned_doses=schedule),
    )

    assert [(f.values, f.detail, f.triggered_at) for f in result.findings] == [
        (
            {"taking_percent": 71.4, "doses": 7},
            "5 of 7 doses taken in 7 days (71 %, below 80 %)",
            schedule[-1].at,
        )
    ]


def test_doses_of_a_medication_without_a_plan_count_as_logged_beside_the_plans():
    schedule = planned([True, True, True, True])
    prn = daily(["skipped"], medication="furosemide-40mg")

    result = adherence.taking_rate(
        default_rule("dose_taking_rate_7_days"),
        replace(context(prn), planned_doses=schedule),
    )

    # 4 of 5 (the plan's four, the unplanned skip) is exactly 80 %: not below
    assert (result.findings, result.cleared_at) == ([], max(schedule[-1].at, prn[0].measured_at))


def test_scheduled_doses_due_before_the_window_do_not_count():
    old = planned([False] * 3)
    old = [PlannedDose(d.medication, d.due_at - days(WINDOW_DAYS), False, d.at) for d in old]
    recent = planned([True] * 3)

    result = adherence.taking_rate(
        default_rule("dose_taking_rate_7_days"),
        replace(context([]), planned_doses=old + recent),
    )

    assert (result.findings, result.cleared_at) == ([], recent[-1].at)


def test_the_count_takes_a_plans_slots_and_logged_doses_only_of_medications_without_one():
    # 1 of 3 warfarin slots taken (the patient logged that one dose), 1 furosemide dose
    # logged as taken without a plan: 2 of 4, not the 2 of 2 logged doses.
    schedule = planned([False, True, False])
    logged = [dose(schedule[1].due_at, "taken")]
    prn = daily(["taken"], medication="furosemide-40mg")

    counted = adherence.count_taken_doses(
        planned_doses=schedule, doses=logged + prn, since=NOW - days(WINDOW_DAYS)
    )

    assert counted == adherence.TakingRate(
        taken=2, scheduled=4, planned=3, latest=max(schedule[-1].at, prn[0].measured_at)
    )
    assert counted.percent == 50.0


def test_nothing_to_count_gives_no_percentage():
    counted = adherence.count_taken_doses(planned_doses=[], doses=[], since=NOW - days(7))

    assert (counted, counted.percent) == (adherence.TakingRate(0, 0, 0, None), None)


def test_no_new_dose_means_no_verdict():
    doses = daily(["skipped"] * 3)
    rule = default_rule("dose_taking_rate_7_days")

    result = adherence.evaluate(rule, context([], history=doses))

    assert (result.findings, result.cleared_at) == ([], None)


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        ({}, {"mode": ["Must be one of: consecutive_missed, taking_rate, unanswered_reminders."]}),
        ({"mode": "consecutive_missed"}, {"count": ["This parameter is required."]}),
        (
            {"mode": "consecutive_missed", "count": 2, "medications": "warfarin"},
            {"medications": ["Must be a list of medication ids."]},
        ),
        (
            {"mode": "taking_rate", "window_days": 7},
            {"below_percent": ["This parameter is required."]},
        ),
        (
            {"mode": "taking_rate", "window_days": 7, "below_percent": 80, "count": 2},
            {"count": ["Not a parameter of this rule kind."]},
        ),
    ],
)
def test_invalid_adherence_parameters_are_rejected_with_a_reason_per_parameter(parameters, errors):
    with pytest.raises(InvalidParameters) as raised:
        adherence.validate(parameters, metric="dose")

    assert raised.value.errors == errors


# --- unanswered reminders (raised by monitoring/nudges/escalation.py) -----------------------


def test_unanswered_reminders_take_a_count_and_nothing_else():
    assert adherence.validate({"mode": "unanswered_reminders", "count": 3}, metric="weight") == {
        "mode": "unanswered_reminders",
        "count": 3,
    }
    with pytest.raises(InvalidParameters) as raised:
        adherence.validate({"mode": "unanswered_reminders", "count": 0, "days": 2}, metric="dose")
    assert raised.value.errors == {
        "count": ["Must be at least 1."],
        "days": ["Not a parameter of this rule kind."],
    }


def test_unanswered_reminders_are_not_found_by_evaluating_readings():
    rule = FakeRule(
        kind="adherence",
        metric="dose",
        severity="warning",
        parameters={"mode": "unanswered_reminders", "count": 2},
    )
    doses = daily(["skipped", "skipped", "skipped"])

    result = adherence.evaluate(rule, context(doses[-1:], history=doses[:-1]))

    assert (result.findings, result.cleared_at) == ([], None)
    assert adherence.lookback(rule.parameters) == days(0)
