"""INR time in therapeutic range (Rosendaal) below a limit (NICE: TTR < 65 % is poor control).

Parameters: "target_low", "target_high" (the patient's range), "max_gap_days" (gaps longer
are not interpolated), "window_days", "below_percent".

time_in_range() is the rule's whole computation; the patient page calls it for its periods.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitoring.rules.bands import Band, range_text
from monitoring.rules.base import (
    ON_SCHEDULE,
    SUMMARY_INR_TIME_IN_RANGE,
    Checker,
    Context,
    Evaluation,
    Finding,
    Kind,
    Placement,
    ReadingLike,
    RuleLike,
    number_schema,
    object_schema,
)
from monitoring.rules.words import alert_title, plural
from monitoring.summaries import TimeInRange, rosendaal_ttr
from monitoring.units import format_number

# Rosendaal interpolates from the last INR before the window into it (the interval that ends
# inside the window contributes its days there), so evaluation loads that one reading before
# the window besides the window's (monitoring/evaluation/scheduled.py).
READING_BEFORE_WINDOW = True


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    low = check.number("target_low", minimum=0)
    high = check.number("target_high", minimum=0)
    if low is not None and high is not None and low >= high:
        check.add("target_high", "Must be above target_low.")
    check.integer("max_gap_days", minimum=1)
    check.number("window_days", minimum=1)
    check.number("below_percent", minimum=0)
    check.unknown(["target_low", "target_high", "max_gap_days", "window_days", "below_percent"])
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def time_in_range(
    readings: Sequence[ReadingLike],
    *,
    low: float,
    high: float,
    max_gap_days: int,
    window_days: float,
    now: datetime,
    zone: ZoneInfo,
) -> TimeInRange:
    """Rosendaal TTR over the window's days on the patient's clock: one value per local day,
    interpolated from the last INR before the window on; only days inside it count. The
    window's first local day counts: with an INR today, 30 days count in a 30-day window."""
    first_day = (now - timedelta(days=window_days)).astimezone(zone).date()
    points = [
        (reading.measured_at.astimezone(zone).date(), reading.value)
        for reading in readings
        if reading.measured_at <= now
    ]
    return rosendaal_ttr(points, low=low, high=high, max_gap_days=max_gap_days, since=first_day)


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    ttr = time_in_range(
        context.history,
        low=params["target_low"],
        high=params["target_high"],
        max_gap_days=params["max_gap_days"],
        window_days=params["window_days"],
        now=context.now,
        zone=context.zone,
    )
    if ttr.percent is None:
        return Evaluation()
    if ttr.percent >= params["below_percent"]:
        return Evaluation(cleared_at=context.now)
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
                detail=(
                    f"INR time in range {ttr.percent:.0f} % over {ttr.days_total} days "
                    f"(target {format_number(params['target_low'])}–"
                    f"{format_number(params['target_high'])}; below "
                    f"{format_number(params['below_percent'])} % is poor control)"
                ),
                triggered_at=context.now,
                values={"ttr_percent": round(ttr.percent, 1), "days": ttr.days_total},
                # A lower time in range is worse: the alert shows the worst period.
                placement=Placement(None, None, params["below_percent"] - ttr.percent),
            )
        ]
    )


def bands(rule: RuleLike, *, unit: str) -> list[Band]:
    """The patient's target range."""
    parameters = rule.parameters or {}
    if "target_low" not in parameters:
        return []
    low, high = parameters["target_low"], parameters["target_high"]
    return [Band(low, high, "target", f"Target range {range_text(low, high, unit)}")]


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "INR time in the 2–3 range is below 65 % over the last 183 days (gaps over 56 days
    between results are not counted)"."""
    low, high = format_number(parameters["target_low"]), format_number(parameters["target_high"])
    return (
        f"INR time in the {low}–{high} range is below "
        f"{format_number(parameters['below_percent'])} % over the last "
        f"{plural(parameters['window_days'], 'day')} (gaps over "
        f"{plural(parameters['max_gap_days'], 'day')} between results are not counted)"
    )


KIND = Kind(
    name="inr_ttr",
    label="INR time in therapeutic range",
    parameters_schema=object_schema(
        "INR time in therapeutic range",
        {
            "target_low": number_schema(0),
            "target_high": number_schema(0),
            "max_gap_days": number_schema(1, whole=True),
            "window_days": number_schema(1),
            "below_percent": number_schema(0),
        },
        required=["target_low", "target_high", "max_gap_days", "window_days", "below_percent"],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_SCHEDULE}),
    reading_before_window=READING_BEFORE_WINDOW,
    bands=bands,
    bands_mark_readings=True,
    summary=SUMMARY_INR_TIME_IN_RANGE,
    summary_windows=lambda parameters: [parameters["window_days"]],
    describe=describe,
)
