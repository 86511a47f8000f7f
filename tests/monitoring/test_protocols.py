"""Protocol defaults against the clinical reference.

The expected parameters are read here, straight from clinical.yaml, with the operator each
entry's wording means written out; the product builds the same rules through its own reader
(monitoring.protocols). A template whose numbers drift from its reference entry, or a new
template without an expectation here, fails.
"""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from monitoring.models import ProtocolCode
from monitoring.protocols import protocol_templates
from monitoring.rules import validate_parameters
from tests.monitoring.rules.conftest import reference

PROTOCOLS_YAML = Path(__file__).resolve().parents[2] / "monitoring" / "protocols.yaml"
SPECS = yaml.safe_load(PROTOCOLS_YAML.read_text(encoding="utf-8"))
SOURCES = reference("sources")
SECTION_METRIC = {
    "blood_glucose": "glucose",
    "blood_pressure": "blood_pressure",
    "body_weight": "weight",
    "inr": "inr",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "body_temperature": "temperature",
    "medication_adherence": "dose",
}
NUMBER_WORDS = {"two": 2}
DAYS_PER_MONTH = 365.25 / 12  # calendar arithmetic: "within 6 months" as days


def number(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return float(match[1])


def rule_text(path: str) -> str:
    return reference(path)["rule"]


def condition(op: str, value: float, component: str = "value") -> dict:
    return {"component": component, "op": op, "value": value}


def any_of(*conditions) -> dict:
    return {"conditions": list(conditions), "match": "any"}


def band(path: str) -> dict:
    """A reference band {lower, upper: {value, inclusive}}: inside it fires."""
    entry = reference(path)
    conditions = []
    if "lower" in entry:
        lower = entry["lower"]
        conditions.append(condition("ge" if lower["inclusive"] else "gt", lower["value"]))
    if "upper" in entry:
        upper = entry["upper"]
        conditions.append(condition("le" if upper["inclusive"] else "lt", upper["value"]))
    return {"conditions": conditions, "match": "all"}


def weight_change(path: str) -> dict:
    default = reference(path)["default"]
    return {
        "window_days": default["window_days"],
        "delta": default["delta_kg_gt"],
        "direction": "gain",
        "op": "gt",
    }


def home_average(path: str) -> dict:
    entry = reference(path)
    formula = reference("blood_pressure.computed_metrics.home_bp_average")["formula"]
    spec = next(s for s in SPECS["hypertension"] if s.get("ref") == path)
    return any_of(
        condition("ge", entry["systolic_ge"], "systolic"),
        condition("ge", entry["diastolic_ge"], "diastolic"),
    ) | {
        "window_days": number(formula, r"default (\d+) days"),
        # Not clinical: how many readings make an average (protocols.yaml says so).
        "min_readings": spec["min_readings"],
    }


def nice_marker(sentence: str, op: str) -> dict:
    match = re.match(r"(\w+) INR (?:<=|>=) (\d+(?:\.\d+)?) within (\d+) months", sentence)
    assert match, sentence
    count, value, months = match.groups()
    return any_of(condition(op, float(value))) | {
        "count": NUMBER_WORDS[count],
        "within_days": round(int(months) * DAYS_PER_MONTH),
    }


def cgm(measure: str, band_entry: dict | None) -> dict:
    target = reference(f"blood_glucose.cgm_targets.targets.0.{measure}")
    (op, value), *_ = ((k, v) for k, v in target.items() if k in ("lt", "le", "gt", "ge"))
    sufficiency = reference("blood_glucose.cgm_targets.data_sufficiency")
    parameters = {
        "measure": "percent_in_band" if band_entry else "cv",
        "target": {"op": op, "value": value},
        "window_days": sufficiency["min_days"],
        "min_days": sufficiency["min_days"],
        "min_percent_active": sufficiency["min_percent_active"],
        "sensor_interval_minutes": number(sufficiency["example"], r"(\d+)-min sensor"),
    }
    if band_entry:
        parameters["band"] = band_entry
    return parameters


def engineering_choice(protocol: str, key: str) -> dict:
    return next(s for s in SPECS[protocol] if s.get("key") == key)["parameters"]


RANGES = "blood_glucose.cgm_targets.ranges_mg_dL"
ADHERENCE = "medication_adherence.dose_level_adherence.missed_dose_flag.alert_defaults"
INR_RANGE = reference("inr.target_ranges.0")
NICE_HIGH = rule_text("inr.thresholds.inr_nice_high_marker")
OVERDIURESIS = rule_text("body_weight.thresholds.hf_loss_possible_overdiuresis")
BP_CRISIS = reference("blood_pressure.thresholds.bp_crisis")
HYPOTENSION = reference("blood_pressure.thresholds.hypotension")
HYPOTENSION_SEVERE = reference("blood_pressure.thresholds.hypotension_severe_default")
TTR = reference("inr.computed_metrics.ttr_rosendaal")

EXPECTED_PARAMETERS = {
    # heart failure
    "hf_gain_1_day": weight_change("body_weight.thresholds.hf_gain_1_day"),
    "hf_gain_1_week": weight_change("body_weight.thresholds.hf_gain_1_week"),
    "hf_loss_possible_overdiuresis": {  # "loss >= 2 lb (0.9 kg) over 2 days"
        "window_days": number(OVERDIURESIS, r"over (\d+) days"),
        "delta": number(OVERDIURESIS, r"\((\d+(?:\.\d+)?) kg\)"),
        "direction": "loss",
        "op": "ge",
    },
    "hypotension": any_of(
        condition("lt", HYPOTENSION["systolic_lt"], "systolic"),
        condition("lt", HYPOTENSION["diastolic_lt"], "diastolic"),
    ),
    "hypotension_severe_default": any_of(
        condition("lt", HYPOTENSION_SEVERE["systolic_lt"], "systolic")
    ),
    "dose_taking_rate_7_days": {  # "7-day taking adherence < 80%"
        "mode": "taking_rate",
        "window_days": number(reference(f"{ADHERENCE}.1")["rule"], r"^(\d+)-day"),
        "below_percent": number(reference(f"{ADHERENCE}.1")["rule"], r"< (\d+)%"),
    },
    "weight_missing": engineering_choice("heart_failure", "weight_missing"),
    # hypertension
    "bp_crisis": any_of(
        condition("gt", BP_CRISIS["systolic_gt"], "systolic"),
        condition("gt", BP_CRISIS["diastolic_gt"], "diastolic"),
    ),
    "bp_home_avg_stage2_like": home_average("blood_pressure.thresholds.bp_home_avg_stage2_like"),
    "bp_home_avg_above_goal": home_average("blood_pressure.thresholds.bp_home_avg_above_goal"),
    "bp_missing": engineering_choice("hypertension", "bp_missing"),
    # diabetes
    "hypoglycemia_level_1": band("blood_glucose.thresholds.hypoglycemia_level_1"),
    "hypoglycemia_level_2": band("blood_glucose.thresholds.hypoglycemia_level_2"),
    "hyperglycemia_level_1": band("blood_glucose.thresholds.hyperglycemia_level_1"),
    "hyperglycemia_level_2": band("blood_glucose.thresholds.hyperglycemia_level_2"),
    "hyperglycemia_critical_default": band(
        "blood_glucose.thresholds.hyperglycemia_critical_default"
    ),
    "cgm_tbr_lt70": cgm("tbr_lt70_pct", {"upper": reference(f"{RANGES}.low.upper")}),
    "cgm_tbr_lt54": cgm("tbr_lt54_pct", {"upper": reference(f"{RANGES}.very_low.upper")}),
    "cgm_tir_70_180": cgm(
        "tir_70_180_pct",
        {
            "lower": reference(f"{RANGES}.in_range.lower"),
            "upper": reference(f"{RANGES}.in_range.upper"),
        },
    ),
    "cgm_tar_gt250": cgm("tar_gt250_pct", {"lower": reference(f"{RANGES}.very_high.lower")}),
    "cgm_cv": cgm("cv_pct", None),
    "doses_missed_consecutively": {  # ">= 2 consecutive missed doses of a critical medication"
        "mode": "consecutive_missed",
        "count": number(reference(f"{ADHERENCE}.0")["rule"], r"^>= (\d+) consecutive"),
        "medications": [],
    },
    "glucose_missing": engineering_choice("diabetes", "glucose_missing"),
    # anticoagulation
    "inr_target_range": any_of(
        condition("lt", INR_RANGE["low"]), condition("gt", INR_RANGE["high"])
    ),
    "inr_critical": any_of(  # "INR >= 5.0"
        condition("ge", number(rule_text("inr.thresholds.inr_critical"), r"^INR >= (\S+)$"))
    ),
    "inr_4_5_to_10": {  # "4.5 <= INR <= 10, no bleeding": inside the band fires
        "conditions": [
            condition("ge", number(rule_text("inr.thresholds.inr_4_5_to_10"), r"^(\S+) <= INR")),
            condition("le", number(rule_text("inr.thresholds.inr_4_5_to_10"), r"<= INR <= (\d+)")),
        ],
        "match": "all",
    },
    "inr_gt_10": any_of(  # "INR > 10, no bleeding"
        condition("gt", number(rule_text("inr.thresholds.inr_gt_10"), r"^INR > (\d+),"))
    ),
    "inr_nice_high_marker_any": any_of(  # "..., or any INR >= 8"
        condition("ge", number(NICE_HIGH, r", or any INR >= (\d+)$"))
    ),
    "inr_nice_high_marker_repeated": nice_marker(NICE_HIGH.split(", or ")[0], "ge"),
    "inr_low_nice_marker": nice_marker(rule_text("inr.thresholds.inr_low_nice_marker"), "le"),
    "inr_ttr_rosendaal": {
        "target_low": INR_RANGE["low"],
        "target_high": INR_RANGE["high"],
        "max_gap_days": TTR["parameters"]["max_gap_days"],
        # NICE judges control over the 6 months of its poor-control markers.
        "window_days": round(number(NICE_HIGH, r"within (\d+) months") * DAYS_PER_MONTH),
        "below_percent": number(TTR["quality_thresholds"][0]["rule"], r"^TTR < (\d+)%"),
    },
    # COPD
    "spo2_copd_warning": any_of(  # "SpO2 <= 87%"
        condition("le", number(rule_text("spo2.thresholds.spo2_copd_warning"), r"^SpO2 <= (\d+)%"))
    ),
    "spo2_copd_critical": any_of(  # "SpO2 <= 83%"
        condition("le", number(rule_text("spo2.thresholds.spo2_copd_critical"), r"^SpO2 <= (\d+)%"))
    ),
    "hr_high_warning": any_of(  # "HR >= 111 at rest"
        condition("ge", number(rule_text("heart_rate.thresholds.hr_high_warning"), r"^HR >= (\d+)"))
    ),
    "hr_high_critical": any_of(  # "HR >= 131"
        condition(
            "ge", number(rule_text("heart_rate.thresholds.hr_high_critical"), r"^HR >= (\d+)")
        )
    ),
    "fever": any_of(  # "T >= 38.0 Cel (100.4 degF)"
        condition("ge", number(rule_text("body_temperature.thresholds.fever"), r"^T >= (\S+) Cel"))
    ),
    "high_fever": any_of(  # "T >= 39.1 Cel"
        condition(
            "ge", number(rule_text("body_temperature.thresholds.high_fever"), r"^T >= (\S+) Cel")
        )
    ),
    "spo2_missing": engineering_choice("copd", "spo2_missing"),
}

TEMPLATES = [
    pytest.param(template, id=f"{protocol}:{template.key}")
    for protocol, templates in protocol_templates().items()
    for template in templates
]


def spec_of(template) -> dict:
    return next(
        spec
        for spec in SPECS[template.protocol]
        if spec.get("key") == template.key
        or (
            spec.get("ref")
            and "key" not in spec
            and reference(spec["ref"]).get("id") == template.key
        )
    )


def test_there_is_a_protocol_for_each_condition_we_enrol_patients_for():
    assert set(protocol_templates()) == set(ProtocolCode.values)


def test_every_template_has_an_expectation_here_and_every_expectation_a_template():
    keys = {template.key for templates in protocol_templates().values() for template in templates}

    assert keys == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_templates_numbers_equal_the_reference_entry_it_names(template):
    assert template.parameters == EXPECTED_PARAMETERS[template.key]


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_is_valid_parameters_for_its_kind(template):
    assert validate_parameters(template.kind, template.parameters, metric=template.metric) == (
        template.parameters
    )


@pytest.mark.parametrize("protocol", list(protocol_templates()))
def test_keys_are_unique_within_a_protocol(protocol):
    counts = Counter(template.key for template in protocol_templates()[protocol])

    assert [key for key, count in counts.items() if count > 1] == []


def test_a_key_shared_by_protocols_is_the_same_rule_in_each():
    by_key: dict[str, set] = {}
    for templates in protocol_templates().values():
        for template in templates:
            shape = (template.kind, template.metric, template.severity, template.group)
            by_key.setdefault(template.key, set()).add((shape, yaml.safe_dump(template.parameters)))

    assert {key: len(shapes) for key, shapes in by_key.items() if len(shapes) > 1} == {}


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_keeps_its_reference_path_and_the_metric_of_that_section(template):
    spec = spec_of(template)

    assert template.reference == spec.get("ref", "")
    if template.reference:
        assert template.metric == SECTION_METRIC[template.reference.split(".")[0]]
    else:
        assert template.metric == spec["metric"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_templates_severity_is_its_reference_entrys_or_a_declared_engineering_choice(
    template,
):
    spec = spec_of(template)
    entry = reference(spec["ref"]) if "ref" in spec else {}

    if "severity" in entry:
        assert "severity" not in spec
        assert template.severity == entry["severity"]
    elif "severity_ref" in spec:
        assert template.severity == reference(spec["severity_ref"])["severity"]
    else:
        assert template.severity == spec["severity"]
        assert "engineering choice" in template.source or template.source.startswith(
            "engineering_choice"
        )


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_states_its_evidence_and_every_source_it_names_exists(template):
    spec = spec_of(template)
    if "ref" not in spec:
        assert template.source == f"engineering_choice: {spec['note']}"
        return
    # The status and sources of the nearest entry on the path that states them.
    parts = spec["ref"].split(".")
    entry = next(
        candidate
        for candidate in (reference(".".join(parts[:n])) for n in range(len(parts), 0, -1))
        if isinstance(candidate, dict) and "status" in candidate
    )
    status, _, named = template.source.partition(": ")
    named_sources = re.sub(r" \(.*\)$", "", named)

    assert status == entry["status"]
    assert named_sources.split(", ") == entry.get("sources", [""])
    assert all(source in SOURCES for source in entry.get("sources", []))
