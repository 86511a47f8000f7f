"""API conventions: the error body, pagination and caching shared by every endpoint.

Every 4xx body is JSON: {"detail": "<what was wrong>"} and, where fields were wrong,
{"errors": {"<field>": ["<reason>", ...]}}; the OpenAPI document says so for the 401, 403,
404, 400 and 415 operations may answer without their view's saying (add_error_responses),
and every API test response is checked against it (tests/openapi_responses.py). No API
response is stored by a browser or a shared cache (NoStoreApiMiddleware).
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.views import defaults
from rest_framework import exceptions, pagination
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError(
            f"The body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
            "a request may carry."
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": "Invalid input.", "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": response.data["detail"]}
    return response


class NewestFirstCursorPagination(pagination.CursorPagination):
    """Stable pages over a growing table: a new reading never shifts the next page."""

    page_size = 100
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = ("-measured_at", "-id")


class PagePagination(pagination.PageNumberPagination):
    page_size = 100
    max_page_size = 500
    page_size_query_param = "page_size"


def json_error(request, status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


# Outside DRF (URL not found, body too large, crash), /api/ clients still get JSON.


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(request, 404, "Not found.")
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(request, 400, "Bad request: the request could not be read.")
    return defaults.bad_request(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_error(request, 500, "Server error.")
    return defaults.server_error(request)


# --- A query past the statement timeout (paths, issue 15.2) --------------------------------

logger = logging.getLogger(__name__)
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled (statement_timeout)
TOO_LONG = (
    "This request took longer than the database allows a page and was stopped. "
    "Try again, or ask for less (a shorter period, one patient)."
)


class StatementTimeoutMiddleware:
    """A request whose query PostgreSQL cancelled at the statement_timeout (config/settings.py)
    answers 503 with a Retry-After: JSON under /api/, a short page elsewhere (the admin), not
    a stack trace or a bare 500. Logged with the path only (it may name a patient's id)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_statement_timeout(exception):
            return None
        logger.warning("statement timeout: %s %s cancelled", request.method, request.path)
        if request.path.startswith("/api/"):
            response = json_error(request, 503, TOO_LONG)
        else:
            response = HttpResponse(
                f"<!doctype html><title>Too slow</title><h1>Too slow</h1><p>{TOO_LONG}</p>",
                status=503,
            )
        response["Retry-After"] = "30"
        return response


def is_statement_timeout(error: BaseException) -> bool:
    cause = error.__cause__
    return isinstance(error, OperationalError) and getattr(cause, "sqlstate", None) == (
        QUERY_CANCELED
    )


# --- Caching ------------------------------------------------------------------------------


class NoStoreApiMiddleware:
    """Cache-Control: no-store on every response under /api/v1/: readings, patients and
    alerts must not stay in a browser's cache or a proxy's after the call. The schema and
    the docs page (/api/schema/, /api/docs/) hold no patient data and may be cached."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/v1/"):
            patch_cache_control(response, no_store=True)
        return response


# --- The OpenAPI document -----------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {},
            "description": "Per field (or per parameter), the reasons.",
        },
    },
    "required": ["detail"],
}
UNAUTHENTICATED = (
    "No credential, or an invalid, expired or revoked one (with a `WWW-Authenticate: Bearer` "
    "challenge)."
)
FORBIDDEN = (
    "The credential may not do this: the wrong kind (a patient app token on a staff "
    "endpoint, say) or a role without the permission."
)
NOT_FOUND = "No such object, or one the caller may not see (another care team's looks the same)."
NO_SUCH_PAGE = "No such page: past the last one, or a cursor this list did not give out."
BAD_BODY = (
    "The body could not be read (not JSON, or larger than the limit) or its fields were wrong."
)
TIMED_OUT = "The request's database work ran past the statement timeout and was stopped."
UNSUPPORTED_MEDIA_TYPE = "The body is not declared `Content-Type: application/json`."
CHALLENGE = {
    "WWW-Authenticate": {
        "schema": {"type": "string"},
        "description": 'The scheme to use: `Bearer realm="api"`.',
    }
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error answers every operation may give, with
    the error body, where the view's own extend_schema did not describe them already —
    the 401 and 403 of every operation that takes a bearer credential, the 404 of every
    operation with a path parameter or pages, and the 400 and 415 of every operation that
    reads a body (DRF answers them while parsing, before the view's code runs)."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    components["schemas"] = dict(sorted(schemas.items()))  # in order, as drf-spectacular has them
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in _error_answers(operation).items():
                operation["responses"].setdefault(code, _error_response(description))
            if "401" in operation["responses"]:
                operation["responses"]["401"].setdefault("headers", CHALLENGE)
            operation["responses"] = dict(sorted(operation["responses"].items()))
    return result


def _error_answers(operation: dict) -> dict[str, str]:
    parameters = operation.get("parameters", [])
    # Any operation's queries may be cancelled at the statement timeout (paths, issue 15.2).
    answers = {"503": TIMED_OUT}
    if any("bearer" in requirement for requirement in operation.get("security", [])):
        answers |= {"401": UNAUTHENTICATED, "403": FORBIDDEN}
    if any(parameter.get("in") == "path" for parameter in parameters):
        answers["404"] = NOT_FOUND
    elif any(parameter.get("name") in PAGE_PARAMETERS for parameter in parameters):
        answers["404"] = NO_SUCH_PAGE
    if "requestBody" in operation:
        answers |= {"400": BAD_BODY, "415": UNSUPPORTED_MEDIA_TYPE}
    return answers


# The query parameters of the paginations above: a page past the end, or a cursor that was
# not given out, is a 404 (DRF's NotFound).
PAGE_PARAMETERS = {PagePagination.page_query_param, NewestFirstCursorPagination.cursor_query_param}


def _error_response(description: str) -> dict:
    return {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        "description": description,
    }
