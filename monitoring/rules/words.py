"""Rules in a clinician's words: operators, units and metrics as the care team says them.

A kind words its own parameters (Kind.describe: "glucose is below 54 mg/dL"); this module
holds the vocabulary they share and the rule's sentence ("Warn when glucose is below
70 mg/dL"). Every number in a sentence is the rule's own parameter, never a rounded or
looked-up one; units are shown as a clinician writes them (monitoring.display).
"""

from __future__ import annotations

import re

from monitoring.display import display_unit
from monitoring.units import format_number

# The operators as words: a condition "op value" reads "<metric> is <words> <value>".
OPERATOR_WORDS = {"lt": "below", "le": "at or below", "gt": "above", "ge": "at or above"}
# What the rule does when it fires, by severity: the sentence's first word.
SEVERITY_VERBS = {"critical": "Alert", "warning": "Warn", "info": "Flag"}
# The metric as the subject of a sentence.
SUBJECTS = {
    "glucose": "glucose",
    "blood_pressure": "blood pressure",
    "weight": "weight",
    "inr": "INR",
    "heart_rate": "heart rate",
    "spo2": "SpO2",
    "temperature": "temperature",
    "dose": "dose",
}
COMPONENT_SUBJECTS = {"systolic": "systolic", "diastolic": "diastolic"}


def subject_of(metric: str) -> str:
    return SUBJECTS.get(metric, metric.replace("_", " "))


def quantity(value: float, unit: str) -> str:
    """A number with its unit as a clinician writes it: "70 mg/dL", "120 mmHg", "2.5"."""
    shown = display_unit(unit)
    if shown == "%":
        return f"{format_number(value)} %"
    return f"{format_number(value)} {shown}".strip()


def plural(count: float, one: str, many: str | None = None) -> str:
    """ "1 day", "14 days", "0.5 days": the count as written and its noun."""
    noun = one if count == 1 else (many or f"{one}s")
    return f"{format_number(count)} {noun}"


def condition_words(condition: dict, *, unit: str) -> str:
    """One condition without its subject: "below 70 mg/dL"."""
    return f"{OPERATOR_WORDS[condition['op']]} {quantity(condition['value'], unit)}"


def conditions_words(parameters: dict, *, unit: str, subject: str) -> str:
    """A rule's conditions as a clause: "glucose is at or above 54 mg/dL and below 70 mg/dL",
    "INR is below 2 or above 3", "systolic is above 180 mmHg or diastolic is above 120 mmHg".
    """
    conditions = parameters.get("conditions") or []
    joiner = " and " if parameters.get("match", "any") == "all" else " or "
    parts = []
    previous = None
    for condition in conditions:
        component = condition.get("component", "value")
        words = condition_words(condition, unit=unit)
        if component != previous:
            name = COMPONENT_SUBJECTS.get(component, subject)
            words = f"{name} is {words}"
        previous = component
        parts.append(words)
    return joiner.join(parts)


def sentence(*, severity: str, clause: str) -> str:
    """The rule as one sentence: "Warn when glucose is below 70 mg/dL"."""
    verb = SEVERITY_VERBS.get(severity, "Flag")
    return f"{verb} when {clause}" if clause else verb


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


# Alert.title's length.
TITLE_LENGTH = 200


def alert_title(clause: str) -> str:
    """What an alert of the rule is titled: the kind's clause, its numbers the parameters of
    the version that fired ("Glucose is below 54 mg/dL"). A trailing parenthesis says how a
    figure is judged ("(from at least 4 readings)"): the rule's page says it, the title
    leaves it out. No verb: an alert states the problem, the rule's sentence what it does."""
    return capitalised(re.sub(r" \([^()]*\)$", "", clause))[:TITLE_LENGTH]
