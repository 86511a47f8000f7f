"""LOINC codes and UCUM units of Vigil's metrics, read from the clinical reference.

No code is typed here: each metric's `loinc` list in clinical.yaml (monitoring/clinical.yaml,
via monitoring.units) says which codes name it. A code is taken in as a single reading of
its metric unless the reference says it names a summary over a period (CGM mean, GMI, TIR)
or a derived ratio (INR's TTR) — those are not one measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from monitoring.units import REFERENCE_KEYS, load_reference, metric_units

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# The base vital-signs profile and, per metric, the FHIR R4 profile specific to it
# (http://hl7.org/fhir/R4/observation-vitalsigns.html). Glucose and INR have none of their
# own; the contract (docs/api.md) names the vital-signs profile on every emitted resource.
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
SPECIFIC_PROFILES = {
    "blood_pressure": "http://hl7.org/fhir/StructureDefinition/bp",
    "weight": "http://hl7.org/fhir/StructureDefinition/bodyweight",
    "heart_rate": "http://hl7.org/fhir/StructureDefinition/heartrate",
    "spo2": "http://hl7.org/fhir/StructureDefinition/oxygensat",
    "temperature": "http://hl7.org/fhir/StructureDefinition/bodytemp",
}


@dataclass(frozen=True)
class Code:
    code: str
    display: str
    use: str = ""

    def coding(self) -> dict:
        return {"system": LOINC, "code": self.code, "display": self.display}


def _is_single_reading(entry: dict) -> bool:
    # clinical.yaml marks CGM summaries with `use: "CGM … summary …"` and INR's TTR by its
    # display ("TTR: days in therapeutic INR range / …"): neither is one measurement.
    return "summary" not in entry.get("use", "") and not entry["display"].startswith("TTR")


@cache
def codes_by_metric() -> dict[str, list[Code]]:
    """Each metric's LOINC codes in the reference's order (the first is the one Vigil emits)."""
    reference = load_reference()
    result = {}
    for metric, key in REFERENCE_KEYS.items():
        result[metric] = [
            Code(entry["code"], entry["display"], entry.get("use", ""))
            for entry in reference[key]["loinc"]
            if _is_single_reading(entry)
        ]
    return result


@dataclass(frozen=True)
class BloodPressureCodes:
    panel: Code
    systolic: Code
    diastolic: Code


@cache
def blood_pressure_codes() -> BloodPressureCodes:
    codes = codes_by_metric()["blood_pressure"]

    def named(word: str) -> Code:
        return next(code for code in codes if code.display.startswith(word))

    panel = next(code for code in codes if "panel" in code.display)
    return BloodPressureCodes(panel, named("Systolic"), named("Diastolic"))


@cache
def metric_by_code() -> dict[str, str]:
    """LOINC code -> metric, for the code of an inbound Observation. The BP components name
    no reading of their own (a reading is the panel), so they are not in it."""
    bp = blood_pressure_codes()
    components = {bp.systolic.code, bp.diastolic.code}
    return {
        code.code: metric
        for metric, codes in codes_by_metric().items()
        for code in codes
        if code.code not in components
    }


def component_codes() -> frozenset[str]:
    bp = blood_pressure_codes()
    return frozenset({bp.systolic.code, bp.diastolic.code})


@cache
def emitted_codings(metric: str, *, cgm: bool = False) -> tuple[dict, ...]:
    """The codings Vigil puts on a reading of `metric`: the reference's first code; a CGM
    glucose the reference's CGM mg/dL code; SpO2 also the code the reference says to
    include alongside (the FHIR vital-signs base code)."""
    codes = codes_by_metric()[metric]
    if metric == "blood_pressure":
        return (blood_pressure_codes().panel.coding(),)
    if metric == "glucose" and cgm:
        cgm_code = next(code for code in codes if code.use.startswith("CGM sensor reading, mg/dL"))
        return (cgm_code.coding(),)
    chosen = [codes[0]] + [code for code in codes[1:] if "include alongside" in code.use]
    return tuple(code.coding() for code in chosen)


def canonical_unit(metric: str) -> str:
    return metric_units()[metric].canonical_unit


def profiles(metric: str) -> list[str]:
    specific = SPECIFIC_PROFILES.get(metric)
    return [VITAL_SIGNS_PROFILE, specific] if specific else [VITAL_SIGNS_PROFILE]
