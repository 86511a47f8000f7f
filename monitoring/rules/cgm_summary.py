"""CGM summary: a consensus CGM metric over the last days misses its target
(time below 70 mg/dL ≥ 4 %, time in range ≤ 70 %, CV > 36 % …), reported only when the data
are sufficient (≥ 14 days, ≥ 70 % of possible readings).

observe() is the rule's whole measurement; the patient page calls it too (its target checks),
and window_readings() / sufficiency() for its own CGM summary.

Parameters: "measure" percent_in_band | cv, "band" (for percent_in_band: lower/upper bounds
as in the reference), "target" {"op", "value"} (the target; the rule fires when it is not
met), "window_days", "min_days", "min_percent_active", "sensor_interval_minutes".
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitoring.rules.bands import Band, range_text
from monitoring.rules.base import (
    DIRECTION_SIGN,
    ON_SCHEDULE,
    OPERATORS,
    SUMMARY_CGM,
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
from monitoring.rules.words import OPERATOR_WORDS, alert_title, plural, quantity
from monitoring.summaries import (
    CgmSufficiency,
    cgm_sufficiency,
    coefficient_of_variation,
    percent_in_band,
)
from monitoring.units import format_number


def validate(parameters: object, *, metric: str) -> dict:
    check = Checker(parameters)
    measure = check.choice("measure", ["percent_in_band", "cv"])
    if measure == "percent_in_band":
        band = check.parameters.get("band")
        if not isinstance(band, dict) or not ({"lower", "upper"} & set(band)):
            check.add("band", "Must be an object with 'lower' and/or 'upper' bounds.")
        else:
            for side in ("lower", "upper"):
                bound = band.get(side)
                if bound is not None and not (
                    isinstance(bound, dict)
                    and isinstance(bound.get("value"), int | float)
                    and isinstance(bound.get("inclusive"), bool)
                ):
                    check.add(f"band.{side}", "Must be {value: number, inclusive: true|false}.")
    target = check.parameters.get("target")
    if not (
        isinstance(target, dict)
        and target.get("op") in OPERATORS
        and isinstance(target.get("value"), int | float)
    ):
        check.add("target", "Must be {op: lt|le|gt|ge, value: number}.")
    for name in ("window_days", "min_days", "min_percent_active", "sensor_interval_minutes"):
        check.number(name, minimum=0.01)
    check.unknown(
        [
            "measure",
            "band",
            "target",
            "window_days",
            "min_days",
            "min_percent_active",
            "sensor_interval_minutes",
        ]
    )
    return check.done()


def lookback(parameters: dict) -> timedelta:
    return timedelta(days=parameters["window_days"])


def window_readings(
    parameters: dict, readings: Sequence[ReadingLike], *, now: datetime
) -> list[ReadingLike]:
    """The sensor readings of the rule's window, [now - window_days, now] (what the sweep
    loads): a fingerstick (`sensor` false: monitoring.summaries.sensor_glucose) is no CGM
    reading, for wear as for the ranges (issue 14.3)."""
    since = now - lookback(parameters)
    return [
        reading
        for reading in readings
        if since <= reading.measured_at <= now and getattr(reading, "sensor", True)
    ]


def sufficiency(parameters: dict, readings: Sequence[ReadingLike]) -> CgmSufficiency:
    """The reference's data sufficiency of one window's readings, with the rule's limits."""
    return cgm_sufficiency(
        [reading.measured_at for reading in readings],
        window_days=parameters["window_days"],
        min_days=parameters["min_days"],
        min_percent_active=parameters["min_percent_active"],
        sensor_interval_minutes=parameters["sensor_interval_minutes"],
    )


@dataclass(frozen=True)
class Observation:
    """The rule's measure over its window: None (and met None) when the data are not
    sufficient, never a number from thin data."""

    sufficiency: CgmSufficiency
    observed: float | None = None
    met: bool | None = None


def observe(parameters: dict, readings: Sequence[ReadingLike], *, now: datetime) -> Observation:
    window = window_readings(parameters, readings, now=now)
    enough = sufficiency(parameters, window)
    if not enough.sufficient:
        return Observation(enough)
    values = [reading.value for reading in window]
    if parameters["measure"] == "cv":
        observed = coefficient_of_variation(values)
    else:
        observed = percent_in_band(values, parameters["band"])
    target = parameters["target"]
    return Observation(enough, observed, OPERATORS[target["op"]](observed, target["value"]))


def evaluate(rule: RuleLike, context: Context) -> Evaluation:
    params = rule.parameters
    observation = observe(params, context.history, now=context.now)
    if observation.observed is None:
        return Evaluation()
    if observation.met:
        return Evaluation(cleared_at=context.now)
    label = (
        "Glucose variability (CV)"
        if params["measure"] == "cv"
        else f"CGM time {band_words(params.get('band') or {}, context.unit)}"
    )
    readings = observation.sufficiency.readings
    target = params["target"]
    past_target = DIRECTION_SIGN[target["op"]] * (observation.observed - target["value"])
    return Evaluation(
        findings=[
            Finding(
                rule_id=rule.id,
                severity=rule.severity,
                title=alert_title(describe(rule.parameters, unit=context.unit, metric=rule.metric)),
                detail=(
                    f"{label} {observation.observed:.1f} % over "
                    f"{format_number(params['window_days'])} days ({readings} readings); "
                    f"target {OPERATOR_WORDS[target['op']]} {format_number(target['value'])} %"
                ),
                triggered_at=context.now,
                values={"percent": round(observation.observed, 1), "readings": readings},
                # How far the measure is past its target: the alert shows the worst period.
                placement=Placement(extremity=past_target),
            )
        ]
    )


def bands(rule: RuleLike, *, unit: str) -> list[Band]:
    """The band whose share of readings the rule measures: a target when bounded both sides
    (time in range 70–180), else a region at the rule's severity (time below 70)."""
    band = (rule.parameters or {}).get("band")
    if not band:
        return []
    low = band.get("lower", {}).get("value")
    high = band.get("upper", {}).get("value")
    severity = "target" if low is not None and high is not None else rule.severity
    return [Band(low, high, severity, f"{rule.title} ({range_text(low, high, unit)})")]


# A target missed, in words: the rule fires when "observed op value" does not hold.
MISSED_TARGET_WORDS = {
    "lt": "is {value} or more",
    "le": "is above {value}",
    "gt": "is {value} or less",
    "ge": "is below {value}",
}


def band_words(band: dict, unit: str) -> str:
    """ "below 54 mg/dL", "above 250 mg/dL", "in 70–180 mg/dL" (bounds as the band keeps
    them)."""
    lower, upper = band.get("lower"), band.get("upper")
    if lower and upper:
        words = f"{format_number(lower['value'])}–{quantity(upper['value'], unit)}"
        inclusive = lower.get("inclusive") and upper.get("inclusive")
        return f"in {words}" if inclusive else f"between {words}"
    bound, side = (upper, ("le", "lt")) if upper else (lower, ("ge", "gt"))
    op = side[0] if bound.get("inclusive") else side[1]
    return f"{OPERATOR_WORDS[op]} {quantity(bound['value'], unit)}"


def describe(parameters: dict, *, unit: str, metric: str = "") -> str:
    """ "CGM time below 54 mg/dL is 1 % or more of the last 14 days (judged with at least
    14 days and 70 % of the 5-minute readings)"."""
    target = parameters["target"]
    missed = MISSED_TARGET_WORDS[target["op"]].format(value=f"{format_number(target['value'])} %")
    days = plural(parameters["window_days"], "day")
    if parameters.get("measure") == "cv":
        what = f"glucose variability (CV) over the last {days} {missed}"
    else:
        what = (
            f"CGM time {band_words(parameters.get('band') or {}, unit)} {missed} of the last {days}"
        )
    return (
        f"{what} (judged with at least {plural(parameters['min_days'], 'day')} and "
        f"{format_number(parameters['min_percent_active'])} % of the "
        f"{format_number(parameters['sensor_interval_minutes'])}-minute readings)"
    )


BOUND_SCHEMA = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {"value": {"type": "number"}, "inclusive": {"type": "boolean"}},
            "required": ["value", "inclusive"],
        },
    ]
}

BAND_SCHEMA = {
    "type": "object",
    "properties": {"lower": BOUND_SCHEMA, "upper": BOUND_SCHEMA},
    "anyOf": [{"required": ["lower"]}, {"required": ["upper"]}],
}

KIND = Kind(
    name="cgm_summary",
    label="CGM summary metric",
    parameters_schema=object_schema(
        "CGM summary metric",
        {
            "measure": {"enum": ["percent_in_band", "cv"]},
            "band": {"description": "The band (percent_in_band): lower and/or upper bound."},
            "target": {
                "type": "object",
                "properties": {"op": {"enum": list(OPERATORS)}, "value": {"type": "number"}},
                "required": ["op", "value"],
            },
            "window_days": number_schema(0.01),
            "min_days": number_schema(0.01),
            "min_percent_active": number_schema(0.01),
            "sensor_interval_minutes": number_schema(0.01),
        },
        required=[
            "measure",
            "target",
            "window_days",
            "min_days",
            "min_percent_active",
            "sensor_interval_minutes",
        ],
        # A share of readings in a band names its band.
        oneOf=[
            {
                "properties": {"measure": {"enum": ["percent_in_band"]}, "band": BAND_SCHEMA},
                "required": ["band"],
            },
            {"properties": {"measure": {"enum": ["cv"]}}},
        ],
    ),
    validate=validate,
    lookback=lookback,
    evaluate=evaluate,
    triggers=frozenset({ON_SCHEDULE}),
    bands=bands,
    summary=SUMMARY_CGM,
    describe=describe,
)
