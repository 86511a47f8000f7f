"""Average over a window: the mean of the readings of the last N days crosses a limit
(home blood pressure: the 7-day average ≥ 135/85; the reference's thresholds apply to
averages of home readings, not to single readings).

Parameters: conditions/match as for threshold (applied to the means), "window_days",
"min_readings" (fewer readings in the window: no verdict).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean

from monitoring.rules.bands import condition_bands
from monitoring.rules.base import (
    CONDITIONS_PROPERTIES,
    ON_READING,
    Checker,
    Conditions,
    Context,
    Evaluation,
    Finding,
    Kind,
    RuleLike,
    components_for,
    number_schema,
    object_schema,
)
from monitoring.rules.threshold import observed
from monitoring.rules.words import alert_title, conditions_words, plural, subject_of
from monitoring.units import format_number


@dataclass(frozen=True)
class Mean:
    id: int
    measured_at: datetime
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    check.conditions(components=components_for(metric))
    check.number("window_days", minimum=1)
    check.integer("min_readings", minimum=1)
    check.unknown(["conditions", "match", "window_days", "min_readings"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def _mean(values):
    # Not rounded before the comparison: a mean of 134.95 is below 135 (shown rounded).
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    if not context.new:
        return Evaluation()
    conditions = Conditions.from_parameters(params)
    latest = max(context.history, key=lambda reading: reading.measured_at)
    # The average as it stood at each new reading, so an upload of several readings counts
    # the same occurrences as the readings one by one; and, when a late reading arrives
    # after later ones, the average it changes now.
    ends = sorted(context.new, key=lambda reading: (reading.measured_at, reading.id))
    if latest not in ends:
        ends.append(latest)
    result = Evaluation()
    clear_since = None  # the first average of the trailing run that meets no condition
    for end in ends:
        mean, count = _average_at(end, context.history, params["window_days"])
        if count < params["min_readings"]:
            continue
        if not conditions.matches(mean):
            clear_since = clear_since or end.measured_at
            if end is latest:
                result.cleared_at = clear_since
            continue
        clear_since = None
        shown = observed(mean, context.unit, conditions.items)
        result.findings.append(
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
                detail=(
                    f"{format_number(params['window_days'])}-day average "
                    f"{observed(mean, context.unit, conditions.items, in_words=True)} over "
                    f"{count} readings"
                ),
                triggered_at=end.measured_at,
                reading_ids=(end.id,),
                values={"average": shown, "readings": count},
                placement=conditions.placement(mean, group=rule.group),
            )
        )
    return result


def _average_at(end, history, window_days: int) -> tuple[Mean, int]:
    """The mean of the readings of the `window_days` days up to and including `end`."""
    since = end.measured_at - timedelta(days=window_days)
    window = [r for r in history if since < r.measured_at <= end.measured_at]
    mean = Mean(
        id=end.id,
        measured_at=end.measured_at,
        value=_mean(r.value for r in window),
        systolic=_mean(r.systolic for r in window),
        diastolic=_mean(r.diastolic for r in window),
    )
    return mean, len(window)


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "the 7-day average systolic is at or above 135 mmHg or diastolic is at or above
    85 mmHg (from at least 4 readings)"."""
    clause = conditions_words(parameters, unit=unit, subject=subject_of(metric))
    days = parameters.get("window_days")
    readings = parameters.get("min_readings")
    words = f"the {format_number(days)}-day average {clause}"
    return f"{words} (from at least {plural(readings, 'reading')})" if readings else words


KIND = Kind(
    name="average",
    label="Average over a window",
    parameters_schema=object_schema(
        "Average over a window",
        {
            **CONDITIONS_PROPERTIES,
            "window_days": number_schema(1),
            "min_readings": number_schema(1, whole=True),
        },
        required=["conditions", "window_days", "min_readings"],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_READING}),
    about_single_readings=True,
    # Its band is drawn for its own alert only: it alerts on a mean, not on single readings.
    bands=condition_bands,
    bands_averaged_over_days=lambda parameters: parameters["window_days"],
    shown_value="average",
    alerts_on_an_average=True,
    describe=describe,
)
