"""Hot statements: built by the ORM once per process, parsed and planned by PostgreSQL once
per connection.

Every reading passes the same few statements (the credential lookup, the insert, the
evaluation's reads and its update). Built by the ORM on every call, building them cost more
CPU than running them: compiling a queryset (joins, select list, ordering, converters) was
the largest Python cost of an evaluation, and PostgreSQL planned each of them again on
every call (0.1–0.5 ms each, more on the partitioned readings table). Profiled and measured
in benchmarks/README.md, "Cost per live reading".

`CompiledQuery` keeps the ORM's own SQL, select list and converters for one shape of a
queryset, and builds the rows back into model instances (select_related included) as the
ORM's ModelIterable does. `hot_cursor()` executes through a server-side-binding psycopg
cursor that prepares each statement on its first use on a connection, so PostgreSQL parses
and plans it once; the connection's Django wrapper still logs, wraps errors and runs
execute_wrappers as for any query. Where statements must not be prepared (SQLite, or a
transaction pooler: a prepared statement lives on one server connection, which PgBouncer in
transaction mode does not keep for a client, docs/deployment.md) it is Django's own cursor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import ForeignKey, Lookup, QuerySet
from django.db.models.query import ModelIterable, ValuesListIterable, get_related_populators
from psycopg.pq import Format


def prepares_statements(db: BaseDatabaseWrapper | None = None) -> bool:
    """Whether hot statements are prepared on this connection: PostgreSQL without a
    transaction pooler, whose settings allow psycopg to prepare (config/settings.py sets a
    prepare_threshold that only statements asked for by name reach)."""
    db = db or connections[DEFAULT_DB_ALIAS]
    return (
        db.vendor == "postgresql"
        and getattr(settings, "DATABASE_POOLER", "") == ""
        and db.settings_dict.get("OPTIONS", {}).get("prepare_threshold") is not None
    )


@contextlib.contextmanager
def hot_cursor() -> Iterator[Any]:
    """A cursor for statements run on every reading: prepared where prepares_statements(),
    otherwise Django's own. Parameters are %s placeholders either way."""
    # The connection once: each attribute of django.db.connection is a thread-local lookup,
    # which, a dozen per statement, cost as much as executing it.
    db = connections[DEFAULT_DB_ALIAS]
    if not prepares_statements(db):
        with db.cursor() as cursor:
            yield cursor
        return
    db.ensure_connection()
    raw = _preparing_cursor(db)
    # Not closed after use: the next hot statement on this connection takes it again.
    yield _LoggedCursor(raw, db) if db.queries_logged else db.make_cursor(raw)


def _preparing_cursor(db: BaseDatabaseWrapper) -> PreparingCursor:
    """The connection's PreparingCursor, made once per psycopg connection (Django's
    connections are per thread, and a new psycopg connection gets a new one)."""
    cached = getattr(db, "_vigil_preparing_cursor", None)
    if cached is not None and cached.connection is db.connection and not cached.closed:
        return cached
    with db.wrap_database_errors:
        cursor = _utc_cursor(db)
    db._vigil_preparing_cursor = cursor
    return cursor


def _utc_cursor(db: BaseDatabaseWrapper) -> PreparingCursor:
    cursor = PreparingCursor(db.connection)
    if settings.USE_TZ and db.timezone_name == "UTC":
        cursor.adapters.register_loader("timestamptz", _UTC_TIMESTAMPTZ_LOADER)
    return cursor


class _LoggedCursor(CursorDebugWrapper):
    """Django's debug wrapper (DEBUG, tests' CaptureQueriesContext), logging the statement
    with its values: Django asks a server-side-binding cursor for the text it sent, which a
    prepared statement does not keep."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        if not many and params is not None:
            with contextlib.suppress(Exception):
                sql = self.db.ops.compose_sql(sql, params)
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


# Django loads timestamptz through a Python subclass of psycopg's loader (to set the tzinfo it
# wants), which, parsing in Python, was a third of building a rule's rows. psycopg's own (C)
# loader gives the same values when the session's time zone is UTC, which is Django's with
# USE_TZ: aware datetimes in datetime.timezone.utc.
_UTC_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.postgres.types["timestamptz"].oid, Format.TEXT
)


class PreparingCursor(psycopg.Cursor):
    """psycopg's server-side-binding cursor, preparing every statement it executes (psycopg
    keeps the prepared names per connection and prepares again on a new one)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class Sent:
    """A query sent in a sent_together() block: its rows, once the block has ended."""

    def __init__(self, rows: list | None = None) -> None:
        self._rows = rows

    def rows(self) -> list:
        if self._rows is None:
            raise RuntimeError("a sent query is read after its sent_together() block")
        return self._rows


class _Batch:
    """The statements of one sent_together() block: each on a cursor of its own (a psycopg
    cursor holds the result of its last statement), read into its Sent when the block's
    pipeline has synced."""

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.db = db
        self.cursors: list[PreparingCursor] = _batch_cursors(db)
        self.sent: list[tuple[Sent, PreparingCursor, Callable[[list[tuple]], list]]] = []

    def send(self, compiled: _Compiled, params: list) -> Sent:
        number = len(self.sent)
        if number == len(self.cursors):
            with self.db.wrap_database_errors:
                self.cursors.append(_utc_cursor(self.db))
        raw = self.cursors[number]
        cursor = _LoggedCursor(raw, self.db) if self.db.queries_logged else self.db.make_cursor(raw)
        cursor.execute(compiled.sql, params)
        sent = Sent()
        self.sent.append((sent, raw, compiled.build))
        return sent

    def read(self) -> None:
        with self.db.wrap_database_errors:
            for sent, raw, build in self.sent:
                sent._rows = build(raw.fetchall())


@contextlib.contextmanager
def sent_together() -> Iterator[None]:
    """Send the statements run in the block to PostgreSQL without waiting for each answer
    before sending the next (psycopg's pipeline mode); their answers come back together
    when the block ends: one wait instead of one per statement.

    For statements that do not depend on each other's rows, such as the reads an
    evaluation makes once it holds the patient's lock: CompiledQuery.send() queues a query,
    whose rows Sent.rows() gives after the block; a statement executed otherwise inside
    the block (its rows read at once) sends what is queued before it and waits, as
    without the block. PostgreSQL runs them in the order sent, each with its own snapshot,
    on the connection's one session: a lock taken first is held by the queries after it,
    which see what the lock's previous holder committed. (psycopg sends the BEGIN of a
    transaction the block starts, and waits for it, before the block's statements.) An
    error of any of them is raised, as Django's, when the block ends, the statements after
    it not run (the transaction is aborted, as it would be).

    Where statements are not prepared (SQLite, a transaction pooler: prepares_statements),
    or libpq has no pipeline mode, each statement runs at once, as without the block.
    A live evaluation waits on PostgreSQL four times instead of eight (benchmarks/README.md,
    "Cost per live reading, fourth pass")."""
    db = connections[DEFAULT_DB_ALIAS]
    if not prepares_statements(db) or _batch_of(db) is not None or not _PIPELINES:
        yield
        return
    db.ensure_connection()
    batch = _Batch(db)
    db._vigil_batch = batch
    try:
        with db.wrap_database_errors, db.connection.pipeline():
            yield
    finally:
        db._vigil_batch = None
    batch.read()


# Pipeline mode needs libpq 14 or later (psycopg-binary bundles one; a psycopg built on an
# older system libpq has none): without it, each statement at once.
_PIPELINES = psycopg.Pipeline.is_supported()


def _batch_of(db: BaseDatabaseWrapper) -> _Batch | None:
    return getattr(db, "_vigil_batch", None)


def _batch_cursors(db: BaseDatabaseWrapper) -> list[PreparingCursor]:
    """The connection's cursors for sent_together(), made as needed and kept with it."""
    cursors = getattr(db, "_vigil_batch_cursors", None)
    if cursors is None or (cursors and cursors[0].connection is not db.connection):
        cursors = db._vigil_batch_cursors = []
    return cursors


@ForeignKey.register_lookup
class AnyOf(Lookup):
    """`patient_id__any=ids` (PostgreSQL): `patient_id = ANY(%s::bigint[])`, the ids as one
    array parameter, so one compiled and prepared statement serves any number of them
    (`__in=ids` makes one statement per count). PostgreSQL probes an index on the column
    once per id (`IN (SELECT unnest(…))` hashed every row of the table or partial index
    instead: a system-wide backlog read for a few patients)."""

    lookup_name = "any"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, list(self.rhs)]

    def as_sqlite(self, compiler, connection):
        # The embedded default has no arrays (and prepares nothing): one placeholder per id.
        lhs, lhs_params = self.process_lhs(compiler, connection)
        ids = list(self.rhs)
        return f"{lhs} IN ({', '.join(['%s'] * len(ids))})", [*lhs_params, *ids]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    build: Callable[[list[tuple]], list]


class CompiledQuery:
    """One query of fixed shape, compiled by the ORM on first use in a process
    (PostgreSQL; elsewhere the ORM runs the queryset itself).

    `queryset(*args)` builds the queryset; `params(*args)` gives its parameters, in the
    order the compiled SQL takes them (Django orders a filter's keyword arguments by name,
    and the values of an `__in` lookup sorted). The first call of each `shape(*args)` (by default
    one shape) compiles `queryset(*args)` and checks that the ORM's own parameters are
    `params(*args)`: a filter added to one and not the other fails on that first call, not
    with wrong rows. Later calls execute the SQL with `params(*args)` and build the rows as
    the queryset would have (model instances with their select_related objects, or the
    tuples of values_list)."""

    def __init__(
        self,
        queryset: Callable[..., QuerySet],
        params: Callable[..., Sequence],
        shape: Callable[..., object] = lambda *args: None,
    ) -> None:
        self._queryset = queryset
        self._params = params
        self._shape = shape
        self._compiled: dict[object, _Compiled] = {}

    def __call__(self, *args) -> list:
        if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
            # The embedded SQLite default runs the ORM's own query: Django adapts values to
            # SQLite's storage as it compiles (datetimes become text), so compiled SQL could
            # not take the caller's values, and nothing is prepared there anyway.
            return list(self._queryset(*args))
        compiled, params = self._compiled_with(args)
        with hot_cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.build(rows)

    def send(self, *args) -> Sent:
        """The query, sent with the others of the enclosing sent_together() block and read
        when the block ends (Sent.rows() after it). Outside such a block, or where
        statements are not sent together, it runs at once."""
        batch = _batch_of(connections[DEFAULT_DB_ALIAS])
        if batch is None:
            return Sent(self(*args))
        compiled, params = self._compiled_with(args)
        return batch.send(compiled, params)

    def _compiled_with(self, args: tuple) -> tuple[_Compiled, list]:
        key = self._shape(*args)
        compiled = self._compiled.get(key)
        params = list(self._params(*args))
        if compiled is None:
            compiled = self._compile(self._queryset(*args), params)
            self._compiled[key] = compiled
        return compiled, params

    @staticmethod
    def _compile(queryset: QuerySet, params: list) -> _Compiled:
        compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
        sql, compiled_params = compiler.as_sql()
        if list(compiled_params) != params:
            raise AssertionError(f"compiled parameters {compiled_params!r} are not {params!r}")
        select = compiler.select
        columns = [expression for expression, _, _ in select[: compiler.col_count]]
        # {position: ([converter, ...], expression)}, applied with the calling thread's
        # connection (Django's connections are per thread; the compiler's is the first's).
        converters = list(compiler.get_converters(columns).items())

        def converted(rows: list[tuple]) -> list:
            if not converters:
                return rows
            connection = connections[DEFAULT_DB_ALIAS]
            result = []
            for row in rows:
                row = list(row)
                for position, (functions, expression) in converters:
                    value = row[position]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[position] = value
                result.append(row)
            return result

        if queryset._iterable_class is ValuesListIterable:
            # values_list() of fields: the rows themselves, in the order the fields were named
            # (Django reorders only around annotations and extra selects, not used here).
            if queryset.query.annotation_select or queryset.query.extra_select:
                raise AssertionError("a compiled values_list names fields only")
            return _Compiled(sql, lambda rows: [tuple(row) for row in converted(rows)])
        if queryset._iterable_class is not ModelIterable:
            raise AssertionError(f"{queryset._iterable_class.__name__} is not compiled")
        klass_info = compiler.klass_info
        model = klass_info["model"]
        first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        attnames = [expression.target.attname for expression, _, _ in select[first:last]]
        populators = get_related_populators(klass_info, select, DEFAULT_DB_ALIAS)

        def build(rows: list[tuple]) -> list:
            objects = []
            shared: dict = {}
            for row in converted(rows):
                instance = model.from_db(DEFAULT_DB_ALIAS, attnames, row[first:last])
                for populator in populators:
                    _populate(populator, row, instance, shared)
                objects.append(instance)
            return objects

        return _Compiled(sql, build)


def _populate(populator, row, instance, shared: dict) -> None:
    """Django's RelatedPopulator.populate, building each related object once per result:
    the six rules of a patient's metric share one Patient and one CareTeam instead of six
    copies of each (building model instances was most of such a query's CPU)."""
    data = (
        populator.reorder_for_init(row)
        if populator.reorder_for_init
        else row[populator.cols_start : populator.cols_end]
    )
    key = data[populator.pk_idx]
    if key is None:
        related = None
    else:
        related = shared.get((id(populator), key))
        if related is None:
            related = populator.model_cls.from_db(populator.db, populator.init_list, data)
            for nested in populator.related_populators:
                _populate(nested, row, related, shared)
            shared[(id(populator), key)] = related
    populator.local_setter(instance, related)
    if related is not None:
        populator.remote_setter(related, instance)
