"""What goes over the wire to PostgreSQL: the connection's protocol messages, traced by libpq
(PQtrace), grouped into round trips.

A round trip is what the client sends before it waits (Parse, Bind, Execute, Sync … of one
or several statements) and what the server answers then. Statements prepared earlier on the
connection are sent as a Bind of their name, without their text: a test that names the
statements of each round trip starts on a new connection (connection.close() first, in a
transactional test).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection
from psycopg.pq import Trace


@dataclass
class RoundTrip:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (message type, its fields)
    received: list[tuple[str, str]] = field(default_factory=list)

    def statements(self) -> list[str]:
        """The text of each statement sent (Parse of an extended query, or a simple Query)."""
        texts = []
        for kind, fields in self.sent:
            if kind == "Parse":
                texts.append(fields.split('" "', 1)[1].rsplit('"', 1)[0])
            elif kind == "Query":
                texts.append(fields.strip().strip('"'))
        return texts

    def executes(self) -> int:
        return sum(1 for kind, _ in self.sent if kind in ("Execute", "Query"))


@contextlib.contextmanager
def round_trips() -> Iterator[list[RoundTrip]]:
    """The round trips of Django's default connection in the block (filled when it ends)."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trips: list[RoundTrip] = []
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield trips
        finally:
            pgconn.untrace()
            trace.seek(0)
            lines = trace.read().decode(errors="replace").splitlines()
    for line in lines:
        direction, _, kind, *rest = [*line.split("\t"), ""]
        fields = rest[0] if rest else ""
        if direction == "F":
            if not trips or trips[-1].received:
                trips.append(RoundTrip())
            trips[-1].sent.append((kind, fields))
        elif direction == "B" and trips:
            trips[-1].received.append((kind, fields))
