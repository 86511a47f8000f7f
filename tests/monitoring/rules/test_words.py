"""Rules in words (monitoring/rules/words.py and each kind's describe): the sentence of every
protocol default, exactly, its numbers the rule's own parameters; units as clinicians write
them; never a parameter's name or an operator's code on screen."""

import re

import pytest

from monitoring import rules
from monitoring.evaluation import unit_of
from monitoring.protocols import protocol_templates
from tests.monitoring.rules.conftest import FakeRule

DEFAULTS = {
    template.key: template for templates in protocol_templates().values() for template in templates
}

SENTENCES = {
    "hf_gain_1_day": "Warn when weight rises by more than 0.9 kg in 1 day",
    "hf_gain_1_week": "Warn when weight rises by more than 2.3 kg in 7 days",
    "hf_loss_possible_overdiuresis": "Flag when weight falls by 0.9 kg or more in 2 days",
    "hypotension": "Warn when systolic is below 90 mmHg or diastolic is below 60 mmHg",
    "hypotension_severe_default": "Alert when systolic is below 80 mmHg",
    "dose_taking_rate_7_days": (
        "Flag when fewer than 80 % of scheduled doses are taken over the last 7 days"
    ),
    "weight_missing": "Warn when no weight reading arrives for 36 hours",
    "bp_crisis": "Alert when systolic is above 180 mmHg or diastolic is above 120 mmHg",
    "bp_home_avg_stage2_like": (
        "Warn when the 7-day average systolic is at or above 145 mmHg or diastolic is at or "
        "above 90 mmHg (from at least 4 readings)"
    ),
    "bp_home_avg_above_goal": (
        "Warn when the 7-day average systolic is at or above 135 mmHg or diastolic is at or "
        "above 85 mmHg (from at least 4 readings)"
    ),
    "bp_missing": "Flag when no blood pressure reading arrives for 72 hours",
    "hypoglycemia_level_1": "Warn when glucose is at or above 54 mg/dL and below 70 mg/dL",
    "hypoglycemia_level_2": "Alert when glucose is below 54 mg/dL",
    "hyperglycemia_level_1": "Flag when glucose is above 180 mg/dL and at or below 250 mg/dL",
    "hyperglycemia_level_2": "Warn when glucose is above 250 mg/dL",
    "hyperglycemia_critical_default": "Alert when glucose is above 400 mg/dL",
    "cgm_tbr_lt70": (
        "Warn when CGM time below 70 mg/dL is 4 % or more of the last 14 days (judged with at "
        "least 14 days and 70 % of the 5-minute readings)"
    ),
    "cgm_tbr_lt54": (
        "Warn when CGM time below 54 mg/dL is 1 % or more of the last 14 days (judged with at "
        "least 14 days and 70 % of the 5-minute readings)"
    ),
    "cgm_tir_70_180": (
        "Flag when CGM time in 70–180 mg/dL is 70 % or less of the last 14 days (judged with "
        "at least 14 days and 70 % of the 5-minute readings)"
    ),
    "cgm_tar_gt250": (
        "Flag when CGM time above 250 mg/dL is 5 % or more of the last 14 days (judged with at "
        "least 14 days and 70 % of the 5-minute readings)"
    ),
    "cgm_cv": (
        "Flag when glucose variability (CV) over the last 14 days is above 36 % (judged with at "
        "least 14 days and 70 % of the 5-minute readings)"
    ),
    "doses_missed_consecutively": (
        "Warn when 2 scheduled doses in a row of a medication marked critical are missed"
    ),
    "glucose_missing": "Flag when no glucose reading arrives for 48 hours",
    "inr_target_range": "Warn when INR is below 2 or above 3",
    "inr_critical": "Alert when INR is at or above 5",
    "inr_4_5_to_10": "Warn when INR is at or above 4.5 and at or below 10",
    "inr_gt_10": "Alert when INR is above 10",
    "inr_nice_high_marker_any": "Alert when INR is at or above 8",
    "inr_nice_high_marker_repeated": (
        "Alert when INR is at or above 5 in 2 readings within 183 days"
    ),
    "inr_low_nice_marker": "Warn when INR is at or below 1.5 in 2 readings within 183 days",
    "inr_ttr_rosendaal": (
        "Warn when INR time in the 2–3 range is below 65 % over the last 183 days (gaps over "
        "56 days between results are not counted)"
    ),
    "spo2_copd_warning": "Warn when SpO2 is at or below 87 %",
    "spo2_copd_critical": "Alert when SpO2 is at or below 83 %",
    "hr_high_warning": "Warn when heart rate is at or above 111 bpm",
    "hr_high_critical": "Alert when heart rate is at or above 131 bpm",
    "fever": "Warn when temperature is at or above 38 °C",
    "high_fever": "Alert when temperature is at or above 39.1 °C",
    "spo2_missing": "Flag when no SpO2 reading arrives for 48 hours",
}


def test_every_protocol_default_has_its_sentence():
    assert set(SENTENCES) == set(DEFAULTS)


@pytest.mark.parametrize("key", sorted(SENTENCES))
def test_the_sentence_of_a_protocol_default(key):
    template = DEFAULTS[key]

    said = rules.sentence(template, unit=unit_of(template.metric))

    assert said == SENTENCES[key]
    # No parameter names, operator codes or UCUM codes on screen.
    assert not re.search(r"_|\b(lt|le|gt|ge)\b|mm\[Hg\]|Cel|\{INR\}|/min", said)


def test_every_kind_has_a_default_sentence_here_or_below():
    worded = {DEFAULTS[key].kind for key in SENTENCES} | {"sustained"}
    assert worded == set(rules.KINDS)


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (
            {"conditions": [{"op": "lt", "value": 70}], "match": "any", "count": 3},
            "Warn when glucose is below 70 mg/dL for 3 readings in a row",
        ),
        (
            {"conditions": [{"op": "lt", "value": 70}], "duration_minutes": 30},
            "Warn when glucose is below 70 mg/dL for at least 30 minutes",
        ),
    ],
)
def test_the_sentence_of_a_sustained_rule(parameters, expected):
    rule = FakeRule(kind="sustained", metric="glucose", severity="warning", parameters=parameters)

    assert rules.sentence(rule, unit="mg/dL") == expected


def test_a_tailored_version_is_said_with_its_own_numbers_and_severity():
    template = DEFAULTS["hypoglycemia_level_2"]

    said = rules.sentence(
        template,
        {"conditions": [{"op": "le", "value": 50.5}], "match": "all"},
        unit="mg/dL",
        severity="warning",
    )

    assert said == "Warn when glucose is at or below 50.5 mg/dL"


def test_the_other_consecutive_and_reminder_modes_of_adherence():
    def said(parameters):
        metric = "weight" if parameters["mode"] == "unanswered_reminders" else "dose"
        rule = FakeRule(kind="adherence", metric=metric, severity="warning", parameters=parameters)
        return rules.sentence(rule, unit="")

    assert said({"mode": "consecutive_missed", "count": 3, "medications": ["warfarin"]}) == (
        "Warn when 3 scheduled doses in a row of warfarin are missed"
    )
    assert said({"mode": "unanswered_reminders", "count": 3}) == (
        "Warn when 3 weight reminders in a row go unanswered"
    )
    assert said({"mode": "unanswered_reminders", "count": 1}) == (
        "Warn when a weight reminder goes unanswered"
    )


def test_parameters_a_kind_cannot_word_fall_back_to_the_generic_description():
    assert rules.describe("threshold", {"colour": "red"}, unit="mg/dL") == "colour red"


@pytest.mark.parametrize(
    ("key", "title"),
    [
        ("hypoglycemia_level_2", "Glucose is below 54 mg/dL"),
        ("bp_crisis", "Systolic is above 180 mmHg or diastolic is above 120 mmHg"),
        (
            "bp_home_avg_above_goal",
            "The 7-day average systolic is at or above 135 mmHg or diastolic is at or above "
            "85 mmHg",
        ),
        ("cgm_tbr_lt54", "CGM time below 54 mg/dL is 1 % or more of the last 14 days"),
        ("weight_missing", "No weight reading arrives for 36 hours"),
    ],
)
def test_an_alert_is_titled_with_the_clause_of_the_version_that_fired(key, title):
    template = DEFAULTS[key]
    clause = rules.describe(
        template.kind, template.parameters, unit=unit_of(template.metric), metric=template.metric
    )

    assert rules.words.alert_title(clause) == title
