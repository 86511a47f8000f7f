"""Conversions and plausibility limits, checked against the clinical reference itself.

The expected numbers are read from the shipped clinical.yaml with a plain YAML load, not
through monitoring.units, so a mistake in how units.py reads the file shows up here. A
number is typed out only where the test asserts what the reference says.
"""

import pytest
import yaml

from monitoring.units import REFERENCE_PATH, Range, format_number, metric_units

REFERENCE = yaml.safe_load(REFERENCE_PATH.read_text(encoding="utf-8"))

SECTIONS = {
    "glucose": "blood_glucose",
    "blood_pressure": "blood_pressure",
    "weight": "body_weight",
    "inr": "inr",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "temperature": "body_temperature",
}
SINGLE_VALUE_METRICS = [metric for metric in SECTIONS if metric != "blood_pressure"]


def bound(raw) -> float:
    return float(raw["value"] if isinstance(raw, dict) else raw)


def reference_range(metric: str) -> tuple[float, float]:
    plausible = REFERENCE[SECTIONS[metric]]["plausible_range"]
    plausible = plausible.get("accept", plausible)
    return bound(plausible["lower"]), bound(plausible["upper"])


def reference_factor(metric: str, code: str) -> float:
    for entry in REFERENCE[SECTIONS[metric]]["accepted_units"]:
        if entry.get("ucum") == code:
            return float(entry["to_canonical"]["multiply_by"])
    raise AssertionError(f"{code} is not an accepted unit of {metric} in the reference")


# --- The reference values the product depends on ------------------------------------------


def test_the_reference_glucose_factor_is_the_glucose_molar_mass_over_ten():
    assert reference_factor("glucose", "mmol/L") == 18.0156


def test_the_reference_pound_is_the_exact_avoirdupois_pound():
    assert reference_factor("weight", "[lb_av]") == 0.45359237


def test_the_reference_fahrenheit_conversion_is_the_celsius_formula():
    fahrenheit = next(
        entry
        for entry in REFERENCE["body_temperature"]["accepted_units"]
        if entry.get("ucum") == "[degF]"
    )
    assert fahrenheit["to_canonical"] == {"formula": "C = (F - 32) * 5 / 9"}


@pytest.mark.parametrize(
    ("metric", "summary_key"),
    [
        ("glucose", "glucose_mg_dL"),
        ("weight", "weight_kg"),
        ("inr", "inr"),
        ("heart_rate", "heart_rate_per_min"),
        ("spo2", "spo2_percent"),
        ("temperature", "temperature_Cel"),
    ],
)
def test_each_plausible_range_agrees_with_the_reference_plausibility_summary(metric, summary_key):
    summary = REFERENCE["plausibility_summary"][summary_key]

    assert reference_range(metric) == (summary["reject_below"], summary["reject_above"])


@pytest.mark.parametrize(
    ("part", "summary_key"), [("systolic", "systolic_mmHg"), ("diastolic", "diastolic_mmHg")]
)
def test_blood_pressure_ranges_agree_with_the_reference_plausibility_summary(part, summary_key):
    summary = REFERENCE["plausibility_summary"][summary_key]
    plausible = REFERENCE["blood_pressure"]["plausible_range"][part]

    assert (plausible["lower"], plausible["upper"]) == (
        summary["reject_below"],
        summary["reject_above"],
    )


# --- What units.py reads from it -----------------------------------------------------------


@pytest.mark.parametrize("metric", SECTIONS)
def test_each_metric_is_stored_in_the_reference_canonical_unit(metric):
    assert metric_units()[metric].canonical_unit == REFERENCE[SECTIONS[metric]]["canonical_unit"]


@pytest.mark.parametrize("metric", SINGLE_VALUE_METRICS)
def test_each_plausible_range_is_the_reference_range_inclusive_at_both_ends(metric):
    limits = metric_units()[metric].plausible
    lower, upper = reference_range(metric)

    assert (limits.lower, limits.upper) == (lower, upper)
    assert limits.contains(lower)
    assert limits.contains(upper)
    assert not limits.contains(lower - 0.001)
    assert not limits.contains(upper + 0.001)


@pytest.mark.parametrize("part", ["systolic", "diastolic"])
def test_blood_pressure_components_use_the_reference_ranges(part):
    plausible = REFERENCE["blood_pressure"]["plausible_range"][part]
    limits = metric_units()["blood_pressure"].components[part]

    assert limits == Range(plausible["lower"], plausible["upper"], "mm[Hg]")


def test_glucose_in_mmol_per_l_converts_to_whole_mg_per_dl_by_the_reference_factor():
    factor = reference_factor("glucose", "mmol/L")

    assert metric_units()["glucose"].units["mmol/L"].to_canonical(5.5) == round(5.5 * factor)
    assert metric_units()["glucose"].units["mmol/L"].to_canonical(5.5) == 99


@pytest.mark.parametrize(
    ("mmol_per_l", "mg_per_dl"),
    # clinical.yaml blood_glucose.thresholds: the published mmol/L pairs of each limit.
    [(3.0, 54), (3.9, 70), (10.0, 180), (13.9, 250)],
)
def test_the_published_glucose_pairs_convert_to_exactly_their_mg_per_dl_limit(
    mmol_per_l, mg_per_dl
):
    assert metric_units()["glucose"].units["mmol/L"].to_canonical(mmol_per_l) == mg_per_dl


def test_glucose_in_mg_per_dl_is_kept_as_sent():
    assert metric_units()["glucose"].units["mg/dL"].to_canonical(112) == 112


def test_pounds_convert_to_kilograms_by_the_reference_factor():
    factor = reference_factor("weight", "[lb_av]")

    assert metric_units()["weight"].units["[lb_av]"].to_canonical(176.4) == round(176.4 * factor, 6)
    assert metric_units()["weight"].units["[lb_av]"].to_canonical(176.4) == 80.013694


def test_grams_convert_to_kilograms_by_the_reference_factor():
    factor = reference_factor("weight", "g")

    assert metric_units()["weight"].units["g"].to_canonical(81500) == round(81500 * factor, 6)


@pytest.mark.parametrize(
    ("fahrenheit", "celsius"),
    [(100.4, 38.0), (98.6, 37.0), (32, 0.0), (212, 100.0), (-40, -40.0), (113, 45.0)],
)
def test_fahrenheit_converts_to_celsius_without_float_noise(fahrenheit, celsius):
    assert metric_units()["temperature"].units["[degF]"].to_canonical(fahrenheit) == celsius


def test_a_conversion_the_reference_marks_unverified_is_not_accepted():
    # clinical.yaml blood_pressure.accepted_units: kPa is `status: unverified`.
    assert metric_units()["blood_pressure"].lookup("kPa") is None


@pytest.mark.parametrize(
    ("metric", "spelling", "code"),
    [
        ("glucose", "mg/dL", "mg/dL"),
        ("glucose", "mmol/L", "mmol/L"),
        ("weight", "kg", "kg"),
        ("weight", "lb", "[lb_av]"),
        ("weight", "[lb_av]", "[lb_av]"),
        ("temperature", "Cel", "Cel"),
        ("temperature", "°C", "Cel"),
        ("temperature", "[degF]", "[degF]"),
        ("temperature", "°F", "[degF]"),
        ("blood_pressure", "mm[Hg]", "mm[Hg]"),
        ("blood_pressure", "mmHg", "mm[Hg]"),
        ("heart_rate", "/min", "/min"),
        ("heart_rate", "{beats}/min", "{beats}/min"),
        ("heart_rate", "bpm", "bpm"),
        ("inr", "{INR}", "{INR}"),
        ("inr", "1", "1"),
        ("inr", "INR", "INR"),
        ("spo2", "%", "%"),
    ],
)
def test_a_unit_is_found_by_its_ucum_code_or_an_accepted_alias(metric, spelling, code):
    assert metric_units()[metric].lookup(spelling).code == code


@pytest.mark.parametrize(
    ("metric", "spelling"),
    [
        ("glucose", "mg/dl"),
        ("glucose", "mmol"),
        ("weight", "stone"),
        ("weight", "LB"),
        ("temperature", "K"),
        ("temperature", "F"),
        ("heart_rate", "Hz"),
        ("spo2", "percent"),
        ("inr", "mg/dL"),
        ("blood_pressure", "cmH2O"),
    ],
)
def test_an_unknown_spelling_is_no_unit(metric, spelling):
    assert metric_units()[metric].lookup(spelling) is None


@pytest.mark.parametrize("metric", ["glucose", "weight", "temperature"])
def test_glucose_weight_and_temperature_have_no_default_unit(metric):
    assert metric_units()[metric].unit_required is True
    assert metric_units()[metric].lookup(None) is None
    assert metric_units()[metric].lookup("") is None


@pytest.mark.parametrize("metric", ["blood_pressure", "inr", "heart_rate", "spo2"])
def test_single_unit_metrics_default_to_their_canonical_unit(metric):
    spec = metric_units()[metric]

    assert spec.unit_required is False
    assert spec.lookup(None).code == spec.canonical_unit
    assert spec.lookup("").code == spec.canonical_unit


@pytest.mark.parametrize(
    ("metric", "spellings"),
    [
        ("glucose", ["mg/dL", "mmol/L"]),
        ("weight", ["[lb_av]", "g", "kg", "lb"]),
        ("temperature", ["Cel", "[degF]", "°C", "°F"]),
        ("blood_pressure", ["mmHg", "mm[Hg]"]),
        ("heart_rate", ["/min", "bpm", "{beats}/min"]),
        ("inr", ["1", "INR", "ratio", "{INR}"]),
        ("spo2", ["%"]),
    ],
)
def test_accepted_spellings_list_codes_and_aliases(metric, spellings):
    assert metric_units()[metric].accepted_spellings() == spellings


def test_a_range_describes_itself_as_a_person_writes_it():
    assert metric_units()["glucose"].plausible.describe() == "10–1000 mg/dL"
    assert metric_units()["inr"].plausible.describe() == "0.5–20"


@pytest.mark.parametrize(
    ("value", "text"), [(120.0, "120"), (5.55, "5.55"), (0.5, "0.5"), (-40.0, "-40")]
)
def test_format_number_drops_a_trailing_zero_fraction(value, text):
    assert format_number(value) == text
