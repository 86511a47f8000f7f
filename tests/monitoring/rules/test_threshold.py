import pytest

from monitoring.rules import threshold
from monitoring.rules.base import Condition, Finding, InvalidParameters, Placement
from tests.monitoring.rules.conftest import (
    NOW,
    FakeRule,
    bp,
    context,
    default_rule,
    hours,
    reading,
    reference,
    stated_limit,
    to_canonical,
)

# Every limit below is read from the clinical reference (the path is the variable's source).
HYPO_1 = reference("blood_glucose.thresholds.hypoglycemia_level_1")
HYPO_2 = reference("blood_glucose.thresholds.hypoglycemia_level_2")
HYPER_1 = reference("blood_glucose.thresholds.hyperglycemia_level_1")
HYPER_2 = reference("blood_glucose.thresholds.hyperglycemia_level_2")
HYPER_CRITICAL = reference("blood_glucose.thresholds.hyperglycemia_critical_default")
BP_CRISIS = reference("blood_pressure.thresholds.bp_crisis")
HYPOTENSION = reference("blood_pressure.thresholds.hypotension")
HYPOTENSION_SEVERE = reference("blood_pressure.thresholds.hypotension_severe_default")
INR_RANGE = reference("inr.target_ranges.0")
INR_CRITICAL = stated_limit("inr.thresholds.inr_critical")
INR_ABOVE_10 = stated_limit("inr.thresholds.inr_gt_10")
INR_NICE_ANY = stated_limit("inr.thresholds.inr_nice_high_marker", r"any INR >= (\d+)")
SPO2_COPD_WARNING = stated_limit("spo2.thresholds.spo2_copd_warning")
SPO2_COPD_CRITICAL = stated_limit("spo2.thresholds.spo2_copd_critical")
HR_HIGH_WARNING = stated_limit("heart_rate.thresholds.hr_high_warning")
HR_HIGH_CRITICAL = stated_limit("heart_rate.thresholds.hr_high_critical")
FEVER = stated_limit("body_temperature.thresholds.fever")
HIGH_FEVER = stated_limit("body_temperature.thresholds.high_fever")

MG_DL = 1  # glucose is stored in whole-number steps as meters report it
SPO2_STEP = HR_STEP = 1
INR_STEP = TEMPERATURE_STEP = 0.1


def fires(key: str, new_reading) -> bool:
    result = threshold.evaluate(default_rule(key), context([new_reading]))
    assert len(result.findings) <= 1
    return bool(result.findings)


def glucose(value: float):
    return reading("glucose", NOW - hours(1), value)


def inr(value: float):
    return reading("inr", NOW - hours(1), value)


def pressure(systolic: float, diastolic: float):
    return bp(NOW - hours(1), systolic, diastolic)


# --- Every protocol threshold default against its reference entry, at and beside each bound


@pytest.mark.parametrize(
    ("key", "new_reading", "expected"),
    [
        # hypoglycemia_level_1: lower 54 inclusive, upper 70 exclusive
        ("hypoglycemia_level_1", glucose(HYPO_1["lower"]["value"]), True),
        ("hypoglycemia_level_1", glucose(HYPO_1["lower"]["value"] - MG_DL), False),
        ("hypoglycemia_level_1", glucose(HYPO_1["upper"]["value"] - MG_DL), True),
        ("hypoglycemia_level_1", glucose(HYPO_1["upper"]["value"]), False),
        # hypoglycemia_level_2: upper 54 exclusive
        ("hypoglycemia_level_2", glucose(HYPO_2["upper"]["value"] - MG_DL), True),
        ("hypoglycemia_level_2", glucose(HYPO_2["upper"]["value"]), False),
        # hyperglycemia_level_1: lower 180 exclusive, upper 250 inclusive
        ("hyperglycemia_level_1", glucose(HYPER_1["lower"]["value"]), False),
        ("hyperglycemia_level_1", glucose(HYPER_1["lower"]["value"] + MG_DL), True),
        ("hyperglycemia_level_1", glucose(HYPER_1["upper"]["value"]), True),
        ("hyperglycemia_level_1", glucose(HYPER_1["upper"]["value"] + MG_DL), False),
        # hyperglycemia_level_2: lower 250 exclusive
        ("hyperglycemia_level_2", glucose(HYPER_2["lower"]["value"]), False),
        ("hyperglycemia_level_2", glucose(HYPER_2["lower"]["value"] + MG_DL), True),
        # hyperglycemia_critical_default: lower 400 exclusive
        ("hyperglycemia_critical_default", glucose(HYPER_CRITICAL["lower"]["value"]), False),
        (
            "hyperglycemia_critical_default",
            glucose(HYPER_CRITICAL["lower"]["value"] + MG_DL),
            True,
        ),
        # bp_crisis: systolic > 180 or diastolic > 120
        ("bp_crisis", pressure(BP_CRISIS["systolic_gt"], BP_CRISIS["diastolic_gt"]), False),
        ("bp_crisis", pressure(BP_CRISIS["systolic_gt"] + 1, 80), True),
        ("bp_crisis", pressure(160, BP_CRISIS["diastolic_gt"] + 1), True),
        # hypotension: systolic < 90 or diastolic < 60
        ("hypotension", pressure(HYPOTENSION["systolic_lt"], HYPOTENSION["diastolic_lt"]), False),
        ("hypotension", pressure(HYPOTENSION["systolic_lt"] - 1, 70), True),
        ("hypotension", pressure(110, HYPOTENSION["diastolic_lt"] - 1), True),
        # hypotension_severe_default: systolic < 80
        ("hypotension_severe_default", pressure(HYPOTENSION_SEVERE["systolic_lt"], 55), False),
        ("hypotension_severe_default", pressure(HYPOTENSION_SEVERE["systolic_lt"] - 1, 55), True),
        # inr.target_ranges.0: alert outside 2.0–3.0, the bounds themselves are in range
        ("inr_target_range", inr(INR_RANGE["low"]), False),
        ("inr_target_range", inr(INR_RANGE["high"]), False),
        ("inr_target_range", inr(round(INR_RANGE["low"] - INR_STEP, 1)), True),
        ("inr_target_range", inr(round(INR_RANGE["high"] + INR_STEP, 1)), True),
        # inr_critical: INR >= 5.0
        ("inr_critical", inr(INR_CRITICAL), True),
        ("inr_critical", inr(round(INR_CRITICAL - INR_STEP, 1)), False),
        # inr_gt_10: INR > 10
        ("inr_gt_10", inr(INR_ABOVE_10), False),
        ("inr_gt_10", inr(round(INR_ABOVE_10 + INR_STEP, 1)), True),
        # inr_nice_high_marker, second clause: any INR >= 8
        ("inr_nice_high_marker_any", inr(INR_NICE_ANY), True),
        ("inr_nice_high_marker_any", inr(round(INR_NICE_ANY - INR_STEP, 1)), False),
        # spo2_copd_warning: SpO2 <= 87 %; spo2_copd_critical: SpO2 <= 83 %
        ("spo2_copd_warning", reading("spo2", NOW, SPO2_COPD_WARNING), True),
        ("spo2_copd_warning", reading("spo2", NOW, SPO2_COPD_WARNING + SPO2_STEP), False),
        ("spo2_copd_critical", reading("spo2", NOW, SPO2_COPD_CRITICAL), True),
        ("spo2_copd_critical", reading("spo2", NOW, SPO2_COPD_CRITICAL + SPO2_STEP), False),
        # hr_high_warning: HR >= 111; hr_high_critical: HR >= 131
        ("hr_high_warning", reading("heart_rate", NOW, HR_HIGH_WARNING), True),
        ("hr_high_warning", reading("heart_rate", NOW, HR_HIGH_WARNING - HR_STEP), False),
        ("hr_high_critical", reading("heart_rate", NOW, HR_HIGH_CRITICAL), True),
        ("hr_high_critical", reading("heart_rate", NOW, HR_HIGH_CRITICAL - HR_STEP), False),
        # fever: T >= 38.0 Cel; high_fever: T >= 39.1 Cel
        ("fever", reading("temperature", NOW, FEVER), True),
        ("fever", reading("temperature", NOW, round(FEVER - TEMPERATURE_STEP, 1)), False),
        ("high_fever", reading("temperature", NOW, HIGH_FEVER), True),
        ("high_fever", reading("temperature", NOW, round(HIGH_FEVER - TEMPERATURE_STEP, 1)), False),
    ],
)
def test_each_threshold_default_fires_exactly_as_its_reference_entry_bounds_it(
    key, new_reading, expected
):
    assert fires(key, new_reading) is expected


# --- Values sent in other units are judged after conversion to the canonical unit ---------


@pytest.mark.parametrize(
    ("value", "unit", "level_1", "level_2"),
    [
        # The example: 2.8 mmol/L (50.4 mg/dL) is below the level-2 limit of 3.0 mmol/L.
        (2.8, "mmol/L", False, True),
        # 3.0 mmol/L is the published pair of 54 mg/dL: level 1, not level 2.
        (3.0, "mmol/L", True, False),
        (3.8, "mmol/L", True, False),
        (3.9, "mmol/L", False, False),
    ],
)
def test_glucose_sent_in_mmol_per_l_falls_in_the_level_its_published_pair_gives(
    value, unit, level_1, level_2
):
    stored = glucose(to_canonical("glucose", value, unit))

    assert (fires("hypoglycemia_level_1", stored), fires("hypoglycemia_level_2", stored)) == (
        level_1,
        level_2,
    )


@pytest.mark.parametrize(
    ("value", "level_1", "level_2"),
    [
        # clinical.yaml meta.conversion_policy: the published mmol/L pairs hold (level 1
        # hyperglycaemia is > 10.0 to <= 13.9 mmol/L, level 2 > 13.9): 10.0 mmol/L is stored
        # as 180 mg/dL, not 180.156, and 13.9 as 250, not 250.417.
        (10.0, False, False),
        (10.1, True, False),
        (13.9, True, False),
        (14.0, False, True),
    ],
)
def test_high_glucose_sent_in_mmol_per_l_falls_in_the_level_its_published_pair_gives(
    value, level_1, level_2
):
    stored = glucose(to_canonical("glucose", value, "mmol/L"))

    assert (fires("hyperglycemia_level_1", stored), fires("hyperglycemia_level_2", stored)) == (
        level_1,
        level_2,
    )


# --- What a finding says --------------------------------------------------------------------


def test_a_blood_pressure_crisis_finding_carries_the_rule_reading_and_what_was_observed():
    rule = default_rule("bp_crisis")
    crisis = pressure(BP_CRISIS["systolic_gt"] + 5, 95)

    result = threshold.evaluate(rule, context([crisis], unit="mm[Hg]"))

    systolic = int(BP_CRISIS["systolic_gt"] + 5)
    assert result.findings == [
        Finding(
            rule_id=rule.id,
            severity="critical",
            title="Systolic is above 180 mmHg or diastolic is above 120 mmHg",
            detail=f"{systolic}/95 mmHg at 1 Mar 2026, 06:00 EST",
            triggered_at=crisis.measured_at,
            reading_ids=(crisis.id,),
            values={"observed": f"{systolic}/95 mm[Hg]"},
            # high, tier = the rule's systolic limit, 5 mmHg past it relative to it
            placement=Placement("high", BP_CRISIS["systolic_gt"], 5 / BP_CRISIS["systolic_gt"]),
        )
    ]
    assert result.cleared_at is None


def test_each_matching_new_reading_is_its_own_finding_and_history_is_not_judged_again():
    rule = default_rule("hypoglycemia_level_2")
    low = HYPO_2["upper"]["value"] - 10
    earlier = glucose(low)
    first = reading("glucose", NOW - hours(0.5), low)
    second = reading("glucose", NOW - hours(0.25), low)

    result = threshold.evaluate(rule, context([first, second], history=[earlier]))

    assert [finding.reading_ids for finding in result.findings] == [(first.id,), (second.id,)]


def test_a_custom_band_with_match_all_needs_every_condition():
    rule = FakeRule(
        kind="threshold",
        metric="glucose",
        severity="warning",
        parameters={
            "conditions": [{"op": "ge", "value": 100}, {"op": "lt", "value": 120}],
            "match": "all",
        },
    )

    assert [
        bool(threshold.evaluate(rule, context([glucose(value)])).findings)
        for value in (99, 100, 119, 120)
    ] == [False, True, True, False]


# --- Clearing ---------------------------------------------------------------------------------


def test_the_condition_clears_when_the_latest_new_reading_no_longer_matches():
    rule = default_rule("hypoglycemia_level_2")
    low = reading("glucose", NOW - hours(2), HYPO_2["upper"]["value"] - 10)
    normal = reading("glucose", NOW - hours(1), HYPO_1["upper"]["value"] + 40)

    result = threshold.evaluate(rule, context([low, normal]))

    assert [finding.reading_ids for finding in result.findings] == [(low.id,)]
    assert result.cleared_at == normal.measured_at


def test_the_condition_does_not_clear_while_the_latest_reading_still_matches():
    rule = default_rule("hypoglycemia_level_2")
    normal = reading("glucose", NOW - hours(2), HYPO_1["upper"]["value"] + 40)
    low = reading("glucose", NOW - hours(1), HYPO_2["upper"]["value"] - 10)

    assert threshold.evaluate(rule, context([normal, low])).cleared_at is None


def test_a_late_reading_older_than_the_latest_does_not_clear_the_condition():
    rule = default_rule("hypoglycemia_level_2")
    latest_low = reading("glucose", NOW - hours(1), HYPO_2["upper"]["value"] - 10)
    late_normal = reading("glucose", NOW - hours(5), HYPO_1["upper"]["value"] + 40)

    result = threshold.evaluate(rule, context([late_normal], history=[latest_low]))

    assert (result.findings, result.cleared_at) == ([], None)


# --- Parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "parameters", "errors"),
    [
        ("glucose", None, {"parameters": ["Must be an object."], "conditions": [
            "Must be a non-empty list of {component, op, value}."]}),
        ("glucose", {"conditions": []}, {"conditions": [
            "Must be a non-empty list of {component, op, value}."]}),
        ("glucose", {"conditions": [{"op": "eq", "value": 70}]}, {"conditions[0].op": [
            "Must be one of: lt, le, gt, ge."]}),
        ("glucose", {"conditions": [{"op": "lt", "value": "70"}]}, {"conditions[0].value": [
            "Must be a number."]}),
        ("glucose", {"conditions": [{"op": "lt", "value": True}]}, {"conditions[0].value": [
            "Must be a number."]}),
        ("glucose", {"conditions": [{"component": "systolic", "op": "lt", "value": 70}]}, {
            "conditions[0].component": ["Must be one of: value."]}),
        ("blood_pressure", {"conditions": [{"op": "gt", "value": 180}]}, {
            "conditions[0].component": ["Must be one of: systolic, diastolic."]}),
        ("glucose", {"conditions": [{"op": "lt", "value": 70}], "match": "some"}, {
            "match": ["Must be 'any' or 'all'."]}),
        ("glucose", {"conditions": [{"op": "lt", "value": 70}], "window_days": 3}, {
            "window_days": ["Not a parameter of this rule kind."]}),
    ],
)  # fmt: skip
def test_invalid_threshold_parameters_are_rejected_with_a_reason_per_parameter(
    metric, parameters, errors
):
    with pytest.raises(InvalidParameters) as raised:
        threshold.validate(parameters, metric=metric)

    assert raised.value.errors == errors


def test_valid_threshold_parameters_are_returned_unchanged():
    parameters = {"conditions": [{"component": "systolic", "op": "gt", "value": 170}]}

    assert threshold.validate(parameters, metric="blood_pressure") == parameters


# --- Where a finding lies, and how its value is shown ---------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "placement"),
    [
        # a band (54 <= g < 70) of the glucose_low problem looks down from 70
        ("hypoglycemia_level_1", 60, Placement("low", -70, 10 / 70)),
        ("hypoglycemia_level_2", 50, Placement("low", -54, 4 / 54)),
        # INR outside 2.0–3.0 is low or high by the side the reading is on
        ("inr_target_range", 1.6, Placement("low", -2.0, 0.4 / 2.0)),
        ("inr_target_range", 3.6, Placement("high", 3.0, 0.6 / 3.0)),
    ],
)
def test_a_finding_lies_on_its_side_of_its_problem(key, value, placement):
    rule = default_rule(key)
    new = inr(value) if rule.metric == "inr" else glucose(value)

    result = threshold.evaluate(rule, context([new]))

    [finding] = result.findings
    assert finding.placement.direction == placement.direction
    assert finding.placement.tier == placement.tier
    assert finding.placement.extremity == pytest.approx(placement.extremity)


@pytest.mark.parametrize(
    ("value", "limits", "expected"),
    [
        (53.9, [("lt", 54)], "53.9"),
        (53.94, [("lt", 54)], "53.9"),
        (53.999, [("lt", 54)], "53.999"),
        (54.0, [("lt", 54)], "54"),
        (53.9, [], "54"),
        (60.4, [("lt", 54), ("lt", 70)], "60"),
    ],
)
def test_a_value_is_shown_whole_in_mg_per_dl_unless_that_moves_it_across_a_limit(
    value, limits, expected
):
    conditions = [Condition("value", op, limit) for op, limit in limits]

    assert threshold.shown(value, "mg/dL", conditions) == expected
