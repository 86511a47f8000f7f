"""Django's PostgreSQL backend, with a health check that needs no round trip while nothing
says the connection died.

CONN_HEALTH_CHECKS makes Django run `SELECT 1` before the first query of every request and
task on a kept connection: one more statement than a single-reading POST otherwise makes
(the credential lookup and the insert), ~0.2 ms of web CPU and a PostgreSQL wake-up per
reading (benchmarks/README.md, "Cost per live reading, third pass"). A connection the server
ended (pg_terminate_backend, a restart or failover, a pooler's restart) has had the server's
FATAL and end of stream arrive on its socket, which makes the socket readable while the
connection is idle; so does anything else the server sent unasked. Only then is `SELECT 1`
asked, as Django would (and it closes the connection if that fails); a connection that is
idle, in libpq's good state, with nothing to read, is taken as it is. A peer that vanished
without a word (no FIN, no RST) would hang `SELECT 1` as much as the first real statement.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and quietly_idle(self.connection.pgconn)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()


def quietly_idle(pgconn: pq.abc.PGconn) -> bool:
    """Whether libpq holds the connection good and idle, with nothing waiting to be read."""
    if pgconn.status != pq.ConnStatus.OK:
        return False
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # any doubt: the full check decides
        return False
