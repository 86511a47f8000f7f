"""Nightscout's query parameters: `count` and `find[<field>][$gte|$gt|$lte|$lt]`.

lib/server/query.js: a date bound is epoch milliseconds or an ISO 8601 string (a space read
as the `+` a client did not escape); without any bound on the date a query covers the last
four days (`deltaAgo` = TWO_DAYS * 2); `count` defaults to 10 (lib/constants.json
ENTRIES_DEFAULT_COUNT, and the treatments and devicestatus APIs' own default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DEFAULT_COUNT = 10
MAX_COUNT = 10_000  # Nightscout has none; a bound keeps one request's cost bounded
DEFAULT_WINDOW = timedelta(days=4)
FIND = re.compile(r"^find\[(?P<field>[A-Za-z_]+)\]\[\$(?P<op>gte|gt|lte|lt)\]$")


class BadQuery(Exception):
    """A parameter Nightscout would refuse; the message says which and why."""


@dataclass(frozen=True)
class TimeQuery:
    count: int
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive

    def filters(self, column: str) -> dict:
        bounds = {}
        if self.since is not None:
            bounds[f"{column}__gte"] = self.since
        if self.until is not None:
            bounds[f"{column}__lte"] = self.until
        return bounds


def parse_instant(value: str) -> datetime:
    """Epoch milliseconds, an ISO 8601 date-time (UTC unless it says), or a bare date."""
    text = value.strip().replace(" ", "+")
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text) / 1000, tz=UTC)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError, OSError) as error:
        raise BadQuery(f"Cannot parse {value!r} as a valid ISO-8601 date") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time_query(params, *, date_fields: tuple[str, ...], now: datetime) -> TimeQuery:
    """The count and time bounds of a GET's query string (a QueryDict)."""
    raw_count = params.get("count")
    if raw_count in (None, ""):
        count = DEFAULT_COUNT
    else:
        try:
            count = int(raw_count)
        except ValueError as error:
            raise BadQuery(f"count must be a whole number, not {raw_count!r}") from error
        if count < 0:
            raise BadQuery("count must not be negative")
        # MongoDB's limit(0) is no limit: clients ask count=0 for "everything in the range".
        count = MAX_COUNT if count == 0 else min(count, MAX_COUNT)
    since = until = None
    bounded = False
    for name, value in params.items():
        match = FIND.match(name)
        if match is None or match["field"] not in date_fields:
            continue
        bounded = True
        instant = parse_instant(value)
        if match["op"] == "gt":
            instant += timedelta(milliseconds=1)
        elif match["op"] == "lt":
            instant -= timedelta(milliseconds=1)
        if match["op"] in ("gte", "gt"):
            since = instant if since is None else max(since, instant)
        else:
            until = instant if until is None else min(until, instant)
    if not bounded:
        since = now - DEFAULT_WINDOW
    return TimeQuery(count=count, since=since, until=until)
