"""Rule kinds, one module each, behind one contract (see base.py)."""

from types import ModuleType

from monitoring.rules import (
    adherence,
    average,
    cgm_summary,
    count_in_window,
    inr_ttr,
    missing_data,
    rate_of_change,
    sustained,
    threshold,
)
from monitoring.rules.base import InvalidParameters

KINDS: dict[str, ModuleType] = {
    "threshold": threshold,
    "sustained": sustained,
    "count_in_window": count_in_window,
    "rate_of_change": rate_of_change,
    "average": average,
    "missing_data": missing_data,
    "adherence": adherence,
    "cgm_summary": cgm_summary,
    "inr_ttr": inr_ttr,
}


def is_scheduled(kind: str) -> bool:
    """Scheduled kinds are evaluated by the clock (a sweep), not on each new reading."""
    return getattr(KINDS[kind], "SCHEDULED", False)


def validate_parameters(kind: str, parameters: object, *, metric: str) -> dict:
    if kind not in KINDS:
        raise InvalidParameters({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    return KINDS[kind].validate(parameters, metric=metric)


__all__ = ["KINDS", "InvalidParameters", "is_scheduled", "validate_parameters"]
