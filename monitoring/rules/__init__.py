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
    if _holds_null_character(parameters):
        # PostgreSQL's jsonb cannot store U+0000 (the insert fails), even in a part of the
        # parameters a kind does not read, such as an extra key inside a condition.
        raise InvalidParameters({"parameters": ["Null characters are not allowed."]})
    return KINDS[kind].validate(parameters, metric=metric)


def _holds_null_character(value: object) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            return True
    return False


__all__ = ["KINDS", "InvalidParameters", "is_scheduled", "validate_parameters"]
