"""The words of a nudge: a variant's text with its placeholders filled in, in the variant's
language.

Two sources of words. A variant's text is data, one row per language, edited by the clinic in
the admin (NudgeVariant). The phrases Vigil fills into it ({what}) and the notification's
title (delivery.py) are code, marked for translation here and translated in the catalogues
(config/locale/<language>/LC_MESSAGES/django.po); they are rendered under
translation.override of the text's language (`message_language`), so a German text gets
German phrases, and a language without a catalogue reads English.
"""

from __future__ import annotations

import string
from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import translation
from django.utils.translation import pgettext_lazy

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
# {what}: a noun phrase that reads the same as subject or object, since the texts use it as
# both (German: feminine nouns, so "Ihre" in nominative and accusative alike). The context
# (a literal: xgettext reads it) tells translators where the phrase goes.
MEASUREMENT_WHAT = {
    Metric.GLUCOSE: pgettext_lazy("nudge {what}", "your blood glucose check"),
    Metric.BLOOD_PRESSURE: pgettext_lazy("nudge {what}", "your blood pressure check"),
    Metric.WEIGHT: pgettext_lazy("nudge {what}", "your weight check"),
    Metric.INR: pgettext_lazy("nudge {what}", "your INR check"),
    Metric.HEART_RATE: pgettext_lazy("nudge {what}", "your heart rate check"),
    Metric.SPO2: pgettext_lazy("nudge {what}", "your oxygen saturation check"),
    Metric.TEMPERATURE: pgettext_lazy("nudge {what}", "your temperature check"),
}
# {name}: the medication plan's name as the care team wrote it ("Warfarin 5 mg").
DOSE_WHAT = pgettext_lazy("nudge {what}", "your {name} dose")
SOMETHING = pgettext_lazy("nudge {what}", "your check")


def message_language(tag: str | None) -> str:
    """The language of settings.LANGUAGES to render a text of this language tag in:
    "de-AT" → "de"; a language Vigil has no catalogue for → English."""
    try:
        return translation.get_supported_language_variant((tag or "en").strip().lower())
    except LookupError:
        return "en"


def render(
    *,
    variant: NudgeVariant,
    slot: Slot | None,
    zone: ZoneInfo,
    now: datetime,
    streak: int | None,
    period_days: PeriodDays | None = None,
) -> str:
    """The variant's text with {what} (in the variant's language), {time} (local, of the
    slot), {streak} and, given the period's days, {days}, {needed} and {left} filled in; a
    placeholder the text should not have stays as written."""
    at = slot.due_at if slot is not None else now
    values = {"time": at.astimezone(zone).strftime("%H:%M"), "streak": streak or 0}
    if period_days is not None:
        values |= {
            "days": period_days.with_data,
            "needed": period_days.needed,
            "left": period_days.left,
        }
    if slot is not None:
        with translation.override(message_language(variant.language)):
            values["what"] = what_of(slot)
    try:
        return string.Formatter().vformat(variant.text, (), _KeepUnknown(values))
    except (ValueError, IndexError, KeyError, AttributeError):  # a malformed text: as written
        return variant.text


def what_of(slot: Slot) -> str:
    """{what} for the slot, in the active language: the dose of the plan's medication, or
    the measurement of the schedule's metric."""
    if slot.plan_id is not None:
        return str(DOSE_WHAT).format(name=slot.plan.name)
    return str(MEASUREMENT_WHAT.get(slot.schedule.metric, SOMETHING))


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
