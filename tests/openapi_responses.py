"""Every response a test gets from the API is checked against the OpenAPI document.

The document is the one /api/schema/ serves (drf-spectacular, with config.api's
postprocessing hook), built once per test session. A response under /api/v1/ must answer
with a status the document lists for its path and method, and its body must validate
against that status's schema (openapi-core: OpenAPI 3.0 semantics, `nullable`, formats and
$ref included). So a serializer that drifts from the document, or an answer the document
does not mention (a 401, a 409, a 429), fails the test that produced it, whatever the test
itself asserts.

A HEAD is held to its GET's statuses (it has no body to check). Not checked: URLs that
resolve to no view (Django's 404 for a mistyped path) and 405s for a method the path does
not have — the document has no operation to hold them against.
"""

from __future__ import annotations

from functools import cache

from django.core.exceptions import RequestDataTooBig
from django.test.client import Client
from drf_spectacular.generators import SchemaGenerator
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

VALIDATED_PREFIX = "/api/v1/"


class UndocumentedResponse(AssertionError):
    """A response the OpenAPI document does not describe."""


class SentRequest(DjangoOpenAPIRequest):
    """The request as sent; a body over the upload limit (which Django will not read) is
    not needed to check the answer to it."""

    @property
    def body(self) -> bytes:
        try:
            return super().body
        except RequestDataTooBig:
            return b""


@cache
def api_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@cache
def api_document() -> OpenAPI:
    return OpenAPI.from_dict(api_schema())


def check_response(response) -> None:
    """Raises UndocumentedResponse unless the document describes `response`."""
    request = response.wsgi_request
    if not request.path.startswith(VALIDATED_PREFIX) or request.resolver_match is None:
        return
    if request.method == "HEAD":  # a GET without its body: the GET's statuses hold
        _check_head(SentRequest(request), response)
        return
    try:
        api_document().validate_response(SentRequest(request), DjangoOpenAPIResponse(response))
    except (OperationNotFound, PathNotFound) as error:
        if response.status_code == 405:
            return
        raise UndocumentedResponse(f"{request.method} {request.path}: {error}") from error
    except Exception as error:  # openapi-core's validation errors carry the details
        reasons = "; ".join(str(cause) for cause in _causes(error))
        raise UndocumentedResponse(
            f"{request.method} {request.path} answered {response.status_code} "
            f"{response.content[:500]!r}, which the OpenAPI document does not describe: "
            f"{error} {reasons}"
        ) from error


def _check_head(request: SentRequest, response) -> None:
    operation = api_schema()["paths"].get(request.path_pattern, {}).get("get")
    if operation is None:
        if response.status_code == 405:
            return
        raise UndocumentedResponse(f"HEAD {request.path}: no GET operation")
    if str(response.status_code) not in operation["responses"]:
        raise UndocumentedResponse(
            f"HEAD {request.path} answered {response.status_code}, a status the OpenAPI "
            "document does not list for its GET"
        )


def _causes(error):
    yield from getattr(error, "schema_errors", None) or []
    if error.__cause__ is not None:
        yield from _causes(error.__cause__)


def validating_request(original):
    """Client.request, with every /api/v1/ answer checked against the document."""

    def request(self, **kwargs):
        response = original(self, **kwargs)
        check_response(response)
        return response

    return request


def install(monkeypatch) -> None:
    # Client.request is where every test client (Django's Client, DRF's APIClient, their
    # get/post/… and followed redirects) sends a request.
    monkeypatch.setattr(Client, "request", validating_request(Client.request))
