"""The replay behind the tailoring preview (monitoring/rules/preview.py): a rule's own
evaluation over a stretch of readings, its findings folded into alerts as the lifecycle
folds them — exact counts on built histories."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring.protocols import protocol_templates
from monitoring.rules import KINDS
from monitoring.rules.preview import CandidateRule, replay, replayable
from tests.monitoring.rules.conftest import bp, reading

START = datetime(2026, 3, 1, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Berlin")


def candidate(kind, metric, severity, parameters) -> CandidateRule:
    return CandidateRule(
        id=1,
        kind=kind,
        metric=metric,
        group="g",
        severity=severity,
        parameters=parameters,
        title="A rule",
    )


def count(rule, readings, *, now, unit="mg/dL", since=START):
    return replay(
        KINDS[rule.kind],
        rule,
        readings,
        since=since,
        now=now,
        zone=ZONE,
        unit=unit,
        step=timedelta(hours=6),
        info_ttl=timedelta(hours=24),
    )


def glucose(values, *, every=timedelta(hours=1)):
    return [reading("glucose", START + every * (i + 1), value) for i, value in enumerate(values)]


def test_a_threshold_alert_folds_its_findings_until_the_condition_clears():
    below_54 = candidate(
        "threshold", "glucose", "critical", {"conditions": [{"op": "lt", "value": 54}]}
    )
    # 50 opens an alert, 48 folds into it, 60 clears it, 52 is a new alert, 60 clears it.
    readings = glucose([60, 50, 48, 60, 52, 60])

    assert count(below_54, readings, now=START + timedelta(days=1)) == 2


def test_a_tighter_limit_fires_less_on_the_same_readings():
    below_49 = candidate(
        "threshold", "glucose", "critical", {"conditions": [{"op": "lt", "value": 49}]}
    )

    assert count(below_49, glucose([60, 50, 48, 60, 52, 60]), now=START + timedelta(days=1)) == 1


def test_readings_before_the_stretch_and_after_now_count_for_nothing():
    below_54 = candidate(
        "threshold", "glucose", "critical", {"conditions": [{"op": "lt", "value": 54}]}
    )
    readings = [reading("glucose", START - timedelta(hours=1), 40), *glucose([60, 50, 60, 45])]

    assert count(below_54, readings, now=START + timedelta(hours=3)) == 1


def test_a_rule_on_both_sides_of_a_range_has_an_alert_per_side():
    outside = candidate(
        "threshold",
        "inr",
        "warning",
        {"conditions": [{"op": "lt", "value": 2.0}, {"op": "gt", "value": 3.0}], "match": "any"},
    )
    # Low opens the low alert; high opens the high one (and clears low); 2.5 clears both;
    # low again is a new low alert.
    readings = [
        reading("inr", START + timedelta(days=day), value)
        for day, value in ((1, 1.8), (2, 3.5), (3, 2.5), (4, 1.7))
    ]

    assert count(outside, readings, now=START + timedelta(days=5), unit="") == 3


def test_an_info_alert_expires_and_its_condition_found_again_is_a_new_alert():
    high = candidate(
        "threshold",
        "glucose",
        "info",
        {"conditions": [{"op": "gt", "value": 180}, {"op": "le", "value": 250}], "match": "all"},
    )
    readings = [reading("glucose", START + timedelta(hours=hours), 200) for hours in (1, 3, 31)]

    # 1 h and 3 h fold; 31 h is 28 h after the last finding: the info alert expired.
    assert count(high, readings, now=START + timedelta(days=2)) == 2


def test_a_7_day_average_is_replayed_reading_by_reading_with_its_own_window():
    average = candidate(
        "average",
        "blood_pressure",
        "warning",
        {
            "conditions": [
                {"component": "systolic", "op": "ge", "value": 135},
                {"component": "diastolic", "op": "ge", "value": 85},
            ],
            "match": "any",
            "window_days": 7,
            "min_readings": 2,
        },
    )
    readings = [
        bp(START + timedelta(days=day), systolic, 80)
        for day, systolic in ((1, 150), (2, 140), (3, 120), (4, 110), (12, 150), (13, 150))
    ]

    # Days 2 (mean 145) and 3 (136.7) fire one alert; day 4 (130) clears it; day 12 has one
    # reading in its window (no verdict); day 13 (150) fires again.
    assert count(average, readings, now=START + timedelta(days=14), unit="mm[Hg]") == 2


def test_missing_data_is_found_at_the_deadline_a_reading_sets_and_cleared_by_the_next():
    silent = candidate("missing_data", "weight", "warning", {"silent_hours": 36})
    # The reading before the stretch is loaded too (the lookback): the stretch starts watched.
    readings = [reading("weight", START + timedelta(days=day), 80) for day in (-0.5, 0.5, 1, 4)]

    # Silent from day 1 + 36 h until day 4: one alert; day 4's deadline (5.5) is after now.
    assert count(silent, readings, now=START + timedelta(days=5), unit="kg") == 1
    # A longer limit never fires on the same readings.
    longer = candidate("missing_data", "weight", "warning", {"silent_hours": 80})
    assert count(longer, readings, now=START + timedelta(days=5), unit="kg") == 0


@pytest.mark.parametrize(("target", "expected"), [(1, 2), (5, 1)])
def test_a_cgm_summary_is_replayed_at_its_checks_over_its_own_window(target, expected):
    below_54 = candidate(
        "cgm_summary",
        "glucose",
        "warning",
        {
            "measure": "percent_in_band",
            "band": {"upper": {"value": 54, "inclusive": False}},
            "target": {"op": "lt", "value": target},
            "window_days": 1,
            "min_days": 1,
            "min_percent_active": 70,
            "sensor_interval_minutes": 60,
        },
    )
    # Hourly readings from the day before the stretch on: all of day 3 at 50 mg/dL, one
    # reading of day 7 at 50 (1 of 24 in a day: 4.2 %), the rest at 100.
    readings = [
        reading(
            "glucose", START + timedelta(hours=hour), 50 if 72 <= hour < 96 or hour == 180 else 100
        )
        for hour in range(-24, 240)
    ]

    # Day 3 fires one alert (cleared once a day's window holds no low reading); day 7's
    # single low reading misses a 1 % target, not a 5 % one.
    assert count(below_54, readings, now=START + timedelta(days=10)) == expected


def test_dose_adherence_is_not_replayed_from_readings():
    assert [name for name, kind in KINDS.items() if not replayable(kind)] == ["adherence"]


@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if replayable(kind)])
def test_a_replay_of_no_readings(name):
    templates = [t for ts in protocol_templates().values() for t in ts if t.kind == name]
    parameters = (
        templates[0].parameters
        if templates
        else {"conditions": [{"op": "lt", "value": 70}], "count": 3}
    )
    rule = candidate(name, "glucose", "warning", parameters)

    # Nothing to judge a summary by; a missing-data rule finds the silence, once.
    expected = 1 if name == "missing_data" else 0
    assert count(rule, [], now=START + timedelta(days=30), since=START) == expected


def test_a_replay_too_long_for_reading_by_reading_evaluates_runs_of_readings(monkeypatch):
    sustained = candidate(
        "sustained", "glucose", "warning", {"conditions": [{"op": "lt", "value": 70}], "count": 2}
    )
    # Two runs of two lows, a normal reading after each: two episodes.
    readings = glucose([60, 60, 100, 60, 60, 100])
    now = START + timedelta(days=1)

    assert count(sustained, readings, now=now) == 2
    # Bounded to fewer readings than a reading-by-reading walk needs: the six readings are
    # evaluated as one upload, its clearing known at its end only — one alert.
    monkeypatch.setattr("monitoring.rules.preview.MAX_HISTORY_WALKED", 1)
    assert count(sustained, readings, now=now) == 1
