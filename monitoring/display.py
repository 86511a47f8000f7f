"""How the care team's pages write units, dates and times: one vocabulary for every screen.

- Units as a clinician writes them (mmHg, °C, bpm), never the UCUM codes the API and the
  database use (mm[Hg], Cel, /min); INR has no unit on screen.
- One date format ("6 Dec 2026") and one date-time format ("6 Dec 2026, 14:05 CET"), in the
  patient's own zone; beside it the viewer's own time when their clock says otherwise
  ("6 Dec 2026, 14:05 CET · 08:05 EST your time"), so a nurse calling a patient knows both.

The viewer's zone comes from config.viewer_zone (the browser's zone, reported once).
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, tzinfo

# UCUM code -> what a clinician reads. Codes not listed are shown as they are (mg/dL, kg, %).
DISPLAY_UNITS = {
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "[degF]": "°F",
    "/min": "bpm",
    "{INR}": "",
    "[lb_av]": "lb",
}


def display_unit(unit: str) -> str:
    """A canonical (UCUM) unit as a clinician writes it."""
    return DISPLAY_UNITS.get(unit, unit)


def format_date(day: date | None) -> str:
    """ "6 Dec 2026": the one date format of the pages."""
    if day is None:
        return "—"
    return f"{day.day} {day:%b %Y}"


def format_clock(at: datetime, zone: tzinfo) -> str:
    """ "14:05 CET": a time of day in a zone, with the zone's abbreviation."""
    return f"{at.astimezone(zone):%H:%M %Z}"


def format_instant(at: datetime | None, zone: tzinfo) -> str:
    """ "6 Dec 2026, 14:05 CET": an instant on the clock of `zone` (the patient's)."""
    if at is None:
        return "—"
    local = at.astimezone(zone)
    return f"{format_date(local.date())}, {format_clock(local, zone)}"


def format_instant_for(at: datetime | None, zone: tzinfo, viewer_zone: tzinfo | None) -> str:
    """The instant on the patient's clock and, when the viewer's clock differs, on theirs:
    "6 Dec 2026, 14:05 CET · 08:05 EST your time" (the viewer's date added when it is
    another day there)."""
    patient_side = format_instant(at, zone)
    if at is None or viewer_zone is None:
        return patient_side
    local, viewer = at.astimezone(zone), at.astimezone(viewer_zone)
    if local.utcoffset() == viewer.utcoffset() and local.tzname() == viewer.tzname():
        return patient_side
    theirs = format_clock(viewer, viewer_zone)
    if viewer.date() != local.date():
        theirs = f"{format_date(viewer.date())}, {theirs}"
    return f"{patient_side} · {theirs} your time"


def zone_named(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The IANA zone of that name, or None for a name that is not one (hostile input)."""
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
