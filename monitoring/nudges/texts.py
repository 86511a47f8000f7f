"""The words of a nudge: a variant's text with its placeholders filled in, in the variant's
language."""

from __future__ import annotations

import string
from datetime import datetime
from zoneinfo import ZoneInfo

from monitoring.models import Metric, NudgeVariant, Slot

PLACEHOLDERS = {"what", "time", "streak"}
# {what} in the variant's language: a noun phrase that reads the same as subject or object
# (German: feminine nouns, so "Ihre" in nominative and accusative alike).
MEASUREMENT_WHAT = {
    "en": {
        Metric.GLUCOSE: "your blood glucose check",
        Metric.BLOOD_PRESSURE: "your blood pressure check",
        Metric.WEIGHT: "your weight check",
        Metric.INR: "your INR check",
        Metric.HEART_RATE: "your heart rate check",
        Metric.SPO2: "your oxygen saturation check",
        Metric.TEMPERATURE: "your temperature check",
    },
    "de": {
        Metric.GLUCOSE: "Ihre Blutzuckermessung",
        Metric.BLOOD_PRESSURE: "Ihre Blutdruckmessung",
        Metric.WEIGHT: "Ihre Gewichtsmessung",
        Metric.INR: "Ihre INR-Messung",
        Metric.HEART_RATE: "Ihre Pulsmessung",
        Metric.SPO2: "Ihre Messung der Sauerstoffsättigung",
        Metric.TEMPERATURE: "Ihre Temperaturmessung",
    },
}
DOSE_WHAT = {"en": "your {name} dose", "de": "Ihre Dosis {name}"}
SOMETHING = {"en": "your check", "de": "Ihre Messung"}


def render(
    *, variant: NudgeVariant, slot: Slot | None, zone: ZoneInfo, now: datetime, streak: int | None
) -> str:
    """The variant's text with {what}, {time} (local, of the slot) and {streak} filled in; a
    placeholder the text should not have stays as written."""
    language = variant.language.strip().lower().split("-")[0]
    language = language if language in MEASUREMENT_WHAT else "en"
    at = slot.due_at if slot is not None else now
    values = {"time": at.astimezone(zone).strftime("%H:%M"), "streak": streak or 0}
    if slot is not None and slot.plan_id is not None:
        values["what"] = DOSE_WHAT[language].format(name=slot.plan.name)
    elif slot is not None:
        values["what"] = MEASUREMENT_WHAT[language].get(slot.schedule.metric, SOMETHING[language])
    try:
        return string.Formatter().vformat(variant.text, (), _KeepUnknown(values))
    except (ValueError, IndexError, KeyError, AttributeError):  # a malformed text: as written
        return variant.text


class _KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def placeholders_of(text: str) -> set[str]:
    """The placeholder names a variant text uses; raises ValueError on a malformed one."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
