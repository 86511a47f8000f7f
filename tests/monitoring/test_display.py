"""Units, dates and times as the care team's pages write them (monitoring/display.py)."""

import zoneinfo
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitoring.display import (
    display_unit,
    format_date,
    format_instant,
    format_instant_for,
    zone_named,
)

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
AT = datetime(2026, 12, 6, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ucum", "shown"),
    [("mm[Hg]", "mmHg"), ("Cel", "°C"), ("/min", "bpm"), ("{INR}", ""), ("mg/dL", "mg/dL"),
     ("mmol/L", "mmol/L"), ("kg", "kg"), ("%", "%"), ("[lb_av]", "lb")],
)  # fmt: skip
def test_units_are_written_as_clinicians_write_them(ucum, shown):
    assert display_unit(ucum) == shown


def test_one_date_format():
    assert format_date(date(2026, 3, 1)) == "1 Mar 2026"
    assert format_date(None) == "—"


def test_an_instant_on_the_patients_clock():
    assert format_instant(AT, BERLIN) == "6 Dec 2026, 14:05 CET"


def test_the_viewers_own_time_is_added_when_their_clock_differs():
    assert format_instant_for(AT, BERLIN, NEW_YORK) == "6 Dec 2026, 14:05 CET · 08:05 EST your time"


def test_the_viewers_date_is_added_when_it_is_another_day_there():
    late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)

    assert (
        format_instant_for(late, NEW_YORK, BERLIN)
        == "6 Dec 2026, 18:30 EST · 7 Dec 2026, 00:30 CET your time"
    )


def test_nothing_is_added_on_the_same_clock():
    assert format_instant_for(AT, BERLIN, zoneinfo.ZoneInfo("Europe/Berlin")) == (
        "6 Dec 2026, 14:05 CET"
    )
    assert format_instant_for(AT, BERLIN, None) == "6 Dec 2026, 14:05 CET"


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../../etc/passwd", "x" * 65, None])
def test_a_name_that_is_not_a_zone_is_none(name):
    assert zone_named(name) is None


@given(st.text(max_size=80))
def test_any_cookie_text_is_a_zone_or_none(text):
    zone = zone_named(text)

    assert zone is None or isinstance(zone, zoneinfo.ZoneInfo)
