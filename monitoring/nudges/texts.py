"""The words of a nudge: a variant's text with its placeholders filled in, in the variant's
language."""

from __future__ import annotations

import string
from datetime import datetime
from zoneinfo import ZoneInfo

from monitoring.models import Metric, NudgePurpose, NudgeVariant, Slot
from monitoring.nudges.keep_sending import PeriodDays

# What each purpose's texts may say: the slot's {what} and {time}; a streak's {streak} days;
# keep_sending's days with data so far {days}, of {needed} in a full period, and the days
# {left} (today included).
SLOT_PLACEHOLDERS = frozenset({"what", "time"})
PURPOSE_PLACEHOLDERS = {
    NudgePurpose.STREAK: frozenset({"streak"}),
    NudgePurpose.KEEP_SENDING: frozenset({"days", "needed", "left"}),
}
PLACEHOLDERS = set(SLOT_PLACEHOLDERS.union(*PURPOSE_PLACEHOLDERS.values()))
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
    *,
    variant: NudgeVariant,
    slot: Slot | None,
    zone: ZoneInfo,
    now: datetime,
    streak: int | None,
    period_days: PeriodDays | None = None,
) -> str:
    """The variant's text with {what}, {time} (local, of the slot), {streak} and, given the
    period's days, {days}, {needed} and {left} filled in; a placeholder the text should not
    have stays as written."""
    language = variant.language.strip().lower().split("-")[0]
    language = language if language in MEASUREMENT_WHAT else "en"
    at = slot.due_at if slot is not None else now
    values = {"time": at.astimezone(zone).strftime("%H:%M"), "streak": streak or 0}
    if period_days is not None:
        values |= {
            "days": period_days.with_data,
            "needed": period_days.needed,
            "left": period_days.left,
        }
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


def placeholders_for(purposes: list[str]) -> frozenset[str]:
    """The placeholders filled in for every one of these purposes (a text serving several
    may use only what each of them fills in)."""
    allowed = [PURPOSE_PLACEHOLDERS.get(purpose, SLOT_PLACEHOLDERS) for purpose in purposes]
    return frozenset.intersection(*allowed) if allowed else frozenset()


def placeholders_of(text: str) -> set[str]:
    """The placeholder names a variant text uses; raises ValueError on a malformed one."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
