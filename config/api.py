"""API conventions: the error body and pagination shared by every endpoint.

Every 4xx body is JSON: {"detail": "<what was wrong>"} and, where fields were wrong,
{"errors": {"<field>": ["<reason>", ...]}}.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
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
