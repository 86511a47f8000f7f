"""Read-only pages on a PostgreSQL replica; everything else on the primary.

Installed only when DATABASE_REPLICA_URL is set (config/settings.py): the `replica` alias,
ReplicaRoutingMiddleware first in MIDDLEWARE, ReplicaRouter in DATABASE_ROUTERS.

What reads the replica: a GET or HEAD request whose path is one of
DATABASE_REPLICA_PATHS (the admin's index, changelists, change and history pages, where the
patient page's summaries and charts are drawn), until it writes. Everything else reads and
writes the primary: the API (an app reads back what it just posted, and has no cookie to pin
it), POSTs, the admin's login and actions, and every Celery task (evaluation, summaries as
rules, sweeps: they decide on what they read, so a lagging replica would decide wrong).

Never a read after a write on the replica:
- inside a request: the first write the primary executes (an audit row, a session save, any
  INSERT, UPDATE, DELETE, or a row lock: SELECT … FOR UPDATE) pins the rest of the request
  to the primary; db_for_read then names the primary explicitly, so even a related lookup
  from an object loaded from the replica goes there. A statement, not the router's
  db_for_write, decides: Django asks db_for_write for every admin change page's transaction,
  GET included, and that page (the patient's summaries and charts) is what the replica is for;
- across requests: a response to a POST, PUT, PATCH or DELETE sets a cookie that sends the
  same browser's requests to the primary for DATABASE_REPLICA_PIN_SECONDS (above the lag
  the replica is allowed, docs/deployment.md), so the page a save redirects to shows it.
Writes always go to the primary, also for an instance read from the replica (Django would
otherwise save it where it came from).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

PRIMARY = "default"
REPLICA = "replica"
PIN_COOKIE = "vigil_primary"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# What the primary may execute without pinning the request: reads, and the statements of a
# transaction's bookkeeping (Django's savepoints). Anything else writes or locks.
_NOT_A_WRITE = re.compile(r"\s*(SELECT|SAVEPOINT|RELEASE|ROLLBACK|SHOW)\b", re.IGNORECASE)
_ROW_LOCK = re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)


@dataclass
class _Reads:
    """What the current request (or block) may read from."""

    replica: bool
    wrote: bool = False


_reads: ContextVar[_Reads | None] = ContextVar("vigil_replica_reads", default=None)


def replica_allowed_for(request: HttpRequest) -> bool:
    """A designated read-only path, by a safe method, from a client not pinned to the primary."""
    return (
        request.method in SAFE_METHODS
        and PIN_COOKIE not in request.COOKIES
        and any(re.search(path, request.path_info) for path in settings.DATABASE_REPLICA_PATHS)
    )


@contextmanager
def reads_from(*, replica: bool) -> Iterator[_Reads]:
    """Route the reads of this block (and what it calls, in this thread) to the replica or
    not; a write inside it pins the rest of the block to the primary."""
    state = _Reads(replica=replica)
    token = _reads.set(state)

    def pin_on_write(execute, sql, params, many, context):
        if not state.wrote and (not _NOT_A_WRITE.match(sql) or _ROW_LOCK.search(sql)):
            state.wrote = True
        return execute(sql, params, many, context)

    try:
        if replica:
            with connections[PRIMARY].execute_wrapper(pin_on_write):
                yield state
        else:
            yield state
    finally:
        _reads.reset(token)


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str:
        state = _reads.get()
        if state is not None and state.replica and not state.wrote:
            return REPLICA
        return PRIMARY

    def db_for_write(self, model, **hints) -> str:
        # Explicit: Django would otherwise save an instance where it was read from.
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        # The same rows, one of them possibly a little behind.
        return True

    def allow_migrate(self, db: str, app_label: str, model_name=None, **hints) -> bool:
        # The replica replays the primary's WAL: the schema arrives with it.
        return db == PRIMARY


class ReplicaRoutingMiddleware:
    """Decides, per request, whether its reads may go to the replica (first in MIDDLEWARE,
    so the session and user lookups follow the same decision) and pins a browser that
    changed something to the primary for a while."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with reads_from(replica=replica_allowed_for(request)):
            response = self.get_response(request)
        if request.method not in SAFE_METHODS:
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=settings.DATABASE_REPLICA_PIN_SECONDS,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response
