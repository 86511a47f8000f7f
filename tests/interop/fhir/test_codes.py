"""interop/fhir/codes.py: LOINC codes come from the clinical reference, not from code."""

from __future__ import annotations

from interop.fhir import codes
from monitoring.units import REFERENCE_KEYS, load_reference


def test_every_accepted_code_is_listed_for_its_metric_in_the_clinical_reference():
    reference = load_reference()

    for code, metric in codes.metric_by_code().items():
        listed = {entry["code"] for entry in reference[REFERENCE_KEYS[metric]]["loinc"]}
        assert code in listed, (code, metric)


def test_summaries_and_ratios_over_a_period_are_not_single_readings():
    # CGM mean glucose, GMI, time in range; INR's time in therapeutic range.
    for code in ("97507-8", "97506-0", "97510-2", "72281-9"):
        assert code not in codes.metric_by_code()


def test_what_vigil_emits_per_metric():
    emitted = {
        metric: [c["code"] for c in codes.emitted_codings(metric)] for metric in REFERENCE_KEYS
    }

    assert emitted == {
        "glucose": ["2339-0"],
        "blood_pressure": ["85354-9"],
        "weight": ["29463-7"],
        "inr": ["6301-6"],
        "heart_rate": ["8867-4"],
        "spo2": ["59408-5", "2708-6"],
        "temperature": ["8310-5"],
    }
    assert [c["code"] for c in codes.emitted_codings("glucose", cgm=True)] == ["99504-3"]
    bp = codes.blood_pressure_codes()
    assert (bp.panel.code, bp.systolic.code, bp.diastolic.code) == ("85354-9", "8480-6", "8462-4")
