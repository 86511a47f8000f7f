"""The log format: no patient data in a logged database error.

A database error's message quotes the values it is about: PostgreSQL's `DETAIL:  Key
(care_team_id, external_id)=(3, MRN-0042) already exists.`, `invalid input syntax for type
integer: "Arthur Abbott"`. Every log line that carries such an exception would copy them out:
django.request's "Internal Server Error" traceback, Celery's "Task … raised unexpected:
IntegrityError('…')", Django's on_commit error. This formatter writes a database error as its
class and SQLSTATE, in the traceback and wherever the message quotes it. The traceback's
frames (files, lines, source) stay: they hold code, not data.
"""

from __future__ import annotations

import logging
import traceback

from django.db import Error as DjangoDatabaseError

try:
    from psycopg import Error as PsycopgError
except ImportError:  # SQLite-only installs
    PsycopgError = DjangoDatabaseError

DATABASE_ERRORS = (DjangoDatabaseError, PsycopgError)
CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


class RedactingFormatter(logging.Formatter):
    """logging.Formatter that withholds the messages of database errors."""

    def format(self, record: logging.LogRecord) -> str:
        errors = _database_errors(record.exc_info[1] if record.exc_info else None)
        arguments = record.args.values() if isinstance(record.args, dict) else record.args or ()
        for argument in arguments:
            if isinstance(argument, BaseException):
                errors += _database_errors(argument)
        if not errors:
            return super().format(record)
        message = _redact(record.getMessage(), errors)
        # A copy: other handlers of the record format it themselves.
        redacted = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None})
        redacted.exc_text = None
        return super().format(redacted)

    def formatException(self, ei) -> str:
        errors = _database_errors(ei[1])
        if not errors:
            return super().formatException(ei)
        return "".join(_chain_lines(ei[1], errors, seen=set())).rstrip("\n")


def _database_errors(error: BaseException | None) -> list[BaseException]:
    found, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DATABASE_ERRORS):
            found.append(error)
        error = error.__cause__ or error.__context__
    return found


def _redact(text: str, errors: list[BaseException]) -> str:
    """`text` with each database error's message, as str() or repr() writes it, withheld."""
    for error in errors:
        for quoted in (repr(error), str(error)):
            if quoted:
                text = text.replace(quoted, _withheld(error))
    return text


def _withheld(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    sqlstate = getattr(error, "sqlstate", None) or getattr(cause, "sqlstate", None)
    code = f", SQLSTATE {sqlstate}" if sqlstate else ""
    return f"{type(error).__name__}(message withheld: it may quote patient data{code})"


def _chain_lines(error: BaseException, errors: list[BaseException], *, seen: set[int]) -> list[str]:
    """traceback.format_exception's lines for `error` and its causes, with each database
    error's message withheld (also where another exception's message quotes it)."""
    seen.add(id(error))
    lines: list[str] = []
    if error.__cause__ is not None and id(error.__cause__) not in seen:
        lines += [*_chain_lines(error.__cause__, errors, seen=seen), CAUSE]
    elif (
        error.__context__ is not None
        and not error.__suppress_context__
        and id(error.__context__) not in seen
    ):
        lines += [*_chain_lines(error.__context__, errors, seen=seen), CONTEXT]
    if error.__traceback__ is not None:
        lines += ["Traceback (most recent call last):\n", *traceback.format_tb(error.__traceback__)]
    if isinstance(error, DATABASE_ERRORS):
        lines.append(f"{type(error).__module__}.{_withheld(error)}\n")
    else:
        text = "".join(traceback.format_exception_only(type(error), error))
        lines.append(_redact(text, errors))
    return lines
