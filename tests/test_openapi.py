"""The OpenAPI document at /api/schema/ describes the docs/api.md contract; /api/docs/ renders
it."""

import os
import re
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command
from django.urls import Resolver404, resolve
from drf_spectacular.validation import validate_schema

from tests import openapi_responses

SCHEMA_URL = "/api/schema/"
# The contract as merged into the repository (docs/api.md), accepted sections not yet served
# included.
API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"

# Every operation docs/api.md promises, written the way it writes them. docs/api.md may grow,
# but nothing in it changes or goes without a versioned path, so this list only grows too.
CONTRACT = [
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/readings"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/readings"),
    ("GET", "/api/v1/nudges"),
    ("POST", "/api/v1/nudges/{id}/opened"),
    ("GET", "/api/v1/care-teams"),
    ("POST", "/api/v1/care-teams"),
    ("POST", "/api/v1/patients"),
    ("GET", "/api/v1/patients"),
    ("GET", "/api/v1/patients/{id}"),
    ("POST", "/api/v1/patients/{id}/tokens"),
    ("DELETE", "/api/v1/patients/{id}/tokens/{token_id}"),
    ("POST", "/api/v1/patients/{id}/devices"),
    ("DELETE", "/api/v1/patients/{id}/devices/{device_id}"),
    ("GET", "/api/v1/patients/{id}/rules"),
    ("POST", "/api/v1/patients/{id}/rules"),
    ("PATCH", "/api/v1/patients/{id}/rules/{rule_id}"),
    ("GET", "/api/v1/patients/{id}/readings"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts/{id}/acknowledge"),
    ("POST", "/api/v1/alerts/{id}/resolve"),
    # docs/api.md "Also served": built before the product's page named them.
    ("DELETE", "/api/v1/auth/token"),
    ("POST", "/api/v1/push-tokens"),
    ("DELETE", "/api/v1/push-tokens"),
    ("GET", "/api/v1/patients/{id}/schedules"),
    ("POST", "/api/v1/patients/{id}/schedules"),
    ("PATCH", "/api/v1/patients/{id}/schedules/{schedule_id}"),
    ("DELETE", "/api/v1/patients/{id}/schedules/{schedule_id}"),
    ("GET", "/api/v1/patients/{id}/medications"),
    ("POST", "/api/v1/patients/{id}/medications"),
    ("PATCH", "/api/v1/patients/{id}/medications/{plan_id}"),
    ("DELETE", "/api/v1/patients/{id}/medications/{plan_id}"),
    # docs/api.md "Nightscout-compatible uploads" (issue 12).
    ("POST", "/api/v1/patients/{id}/nightscout"),
    ("DELETE", "/api/v1/patients/{id}/nightscout"),
    # docs/api.md "The RPM program" (issue 13).
    ("POST", "/api/v1/patients/{id}/episodes"),
    ("GET", "/api/v1/patients/{id}/episodes"),
    ("PATCH", "/api/v1/patients/{id}/episodes/{episode_id}"),
    ("POST", "/api/v1/patients/{id}/time-entries"),
    ("GET", "/api/v1/patients/{id}/time-entries"),
    ("POST", "/api/v1/time-entries/{id}/approve"),
    ("GET", "/api/v1/patients/{id}/billing"),
    ("GET", "/api/v1/billing/ledger"),
    ("GET", "/api/v1/panel"),
    ("POST", "/api/v1/patients/{id}/reviews"),
]
# What the code base serves today; the schema must list at least these.
IMPLEMENTED_AT_LEAST = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/readings"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/readings"),
    ("GET", "/api/v1/care-teams"),
    ("POST", "/api/v1/care-teams"),
    ("POST", "/api/v1/patients"),
    ("GET", "/api/v1/patients"),
    ("GET", "/api/v1/patients/{id}"),
    ("POST", "/api/v1/patients/{id}/tokens"),
    ("DELETE", "/api/v1/patients/{id}/tokens/{token_id}"),
    ("POST", "/api/v1/patients/{id}/devices"),
    ("DELETE", "/api/v1/patients/{id}/devices/{device_id}"),
    ("GET", "/api/v1/patients/{id}/readings"),
    ("POST", "/api/v1/patients/{id}/nightscout"),
    ("DELETE", "/api/v1/patients/{id}/nightscout"),
    # The RPM program (issue 13).
    ("POST", "/api/v1/patients/{id}/episodes"),
    ("GET", "/api/v1/patients/{id}/episodes"),
    ("PATCH", "/api/v1/patients/{id}/episodes/{episode_id}"),
    ("POST", "/api/v1/patients/{id}/time-entries"),
    ("GET", "/api/v1/patients/{id}/time-entries"),
    ("POST", "/api/v1/time-entries/{id}/approve"),
    ("GET", "/api/v1/patients/{id}/billing"),
    ("GET", "/api/v1/billing/ledger"),
    ("POST", "/api/v1/patients/{id}/reviews"),
    ("GET", "/api/v1/panel"),
}
PAGINATED = {
    ("GET", "/api/v1/readings"),
    ("GET", "/api/v1/patients"),
    ("GET", "/api/v1/patients/{id}/readings"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/patients/{id}/time-entries"),
    ("GET", "/api/v1/panel"),
}
PARAMETER = re.compile(r"\{[^}]+\}")
METHODS = {"get", "post", "put", "patch", "delete"}


def shape(path: str) -> str:
    """/api/v1/patients/{id}/tokens/{token_id} -> /api/v1/patients/{}/tokens/{}."""
    return PARAMETER.sub("{}", path)


def is_served(method: str, path: str) -> bool:
    try:
        match = resolve(PARAMETER.sub("1", path))
    except Resolver404:
        return False
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    return view_class is not None and hasattr(view_class, method.lower())


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def resolve_ref(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def is_documented(schema: dict, node: dict) -> bool:
    """A schema that says something: an object with properties, an array of such, or a type."""
    node = resolve_ref(schema, node)
    if node.get("type") == "array":
        return is_documented(schema, node["items"])
    if "oneOf" in node or "anyOf" in node or "allOf" in node:
        return True
    if node.get("type") == "object" or "properties" in node:
        return bool(node.get("properties")) or bool(node.get("additionalProperties"))
    return "type" in node


# --- Served and valid ---------------------------------------------------------------------


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Vigil API"
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 JSON schema


def test_the_schema_generates_without_warnings():
    # drf-spectacular warns where it had to guess (an unnamed enum, an untyped field).
    call_command("spectacular", "--validate", "--fail-on-warn", file=os.devnull)


def test_the_schema_is_served_as_yaml_by_default(client):
    response = client.get(SCHEMA_URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_the_docs_page_renders_and_points_at_the_schema(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page.lower()
    assert SCHEMA_URL in page


# --- Covers the contract ------------------------------------------------------------------


def test_the_contract_list_holds_every_operation_api_md_names():
    text = API_MD.read_text()
    named = set(re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/api/v1/[^`?\s]*)", text))

    assert named - set(CONTRACT) == set()


def test_the_schema_lists_every_contract_operation_that_is_served(schema):
    served = {(method, path) for method, path in CONTRACT if is_served(method, path)}
    documented = {(method, shape(path)) for method, path, _ in operations(schema)}

    assert served >= IMPLEMENTED_AT_LEAST
    missing = {(m, p) for m, p in served if (m, shape(p)) not in documented}
    assert missing == set()


def test_the_schema_lists_nothing_that_is_not_served(schema):
    for method, path, _ in operations(schema):
        assert is_served(method, path), f"{method} {path}"


# --- Every operation is described ---------------------------------------------------------


def test_every_request_body_has_a_schema_and_an_example(schema):
    for method, path, operation in operations(schema):
        if "requestBody" not in operation:
            continue
        content = operation["requestBody"]["content"]["application/json"]
        assert is_documented(schema, content["schema"]), f"{method} {path}"
        assert content.get("examples"), f"{method} {path} has no request example"


def test_every_success_response_has_a_documented_schema(schema):
    for method, path, operation in operations(schema):
        successes = {code: r for code, r in operation["responses"].items() if code < "300"}
        assert successes, f"{method} {path} documents no success response"
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, f"{method} {path}"
                continue
            content = response.get("content", {}).get("application/json")
            assert content, f"{method} {path} {code} documents no body"
            assert is_documented(schema, content["schema"]), f"{method} {path} {code}"


def test_every_operation_that_returns_a_body_has_an_example_or_a_documented_schema(schema):
    for method, path, operation in operations(schema):
        bodies = [
            r["content"]["application/json"]
            for r in operation["responses"].values()
            if "content" in r
        ]
        assert all(b.get("examples") or is_documented(schema, b["schema"]) for b in bodies), (
            f"{method} {path}"
        )


def test_every_error_response_is_the_json_error_shape(schema):
    for method, path, operation in operations(schema):
        for code, response in operation["responses"].items():
            if code.startswith("4"):
                body = resolve_ref(schema, response["content"]["application/json"]["schema"])
                assert "detail" in body["properties"], f"{method} {path} {code}"


def test_lists_are_documented_with_their_pagination_envelope(schema):
    pages = {
        (method, shape(path)): operation
        for method, path, operation in operations(schema)
        if (method, shape(path)) in {(m, shape(p)) for m, p in PAGINATED}
    }

    assert len(pages) == len(PAGINATED)
    for (method, path), operation in pages.items():
        content = operation["responses"]["200"]["content"]["application/json"]
        body = resolve_ref(schema, content["schema"])
        assert {"next", "previous", "results"} <= body["properties"].keys(), f"{method} {path}"
        assert is_documented(schema, body["properties"]["results"]), f"{method} {path}"


def test_every_operation_but_login_requires_a_bearer_credential(schema):
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A staff token, a patient app token or a device key.",
    }
    for method, path, operation in operations(schema):
        if (method, path) == ("POST", "/api/v1/auth/token"):
            assert operation.get("security", []) in ([], [{}]), "login takes no credential"
        else:
            assert operation["security"] == [{"bearer": []}], f"{method} {path}"


def as_json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a null type, refs point at $defs."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: as_json_schema(value) for key, value in node.items()}
    if isinstance(node.get("$ref"), str):
        node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable") is True:
        del node["nullable"]
        node = (
            node | {"type": [node["type"], "null"]}
            if isinstance(node.get("type"), str)
            else {"anyOf": [node, {"type": "null"}]}
        )
    return node


def documented_examples(schema):
    """(where, example value, its schema) for every request and response example."""
    for method, path, operation in operations(schema):
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [(code, r.get("content", {})) for code, r in operation["responses"].items()]
        for where, content in bodies:
            body = content.get("application/json", {})
            for name, example in body.get("examples", {}).items():
                yield f"{method} {path} {where} {name!r}", example["value"], body["schema"]


def test_every_example_matches_the_schema_it_illustrates(schema):
    definitions = as_json_schema(schema["components"]["schemas"])
    mismatches = []
    for where, value, body_schema in documented_examples(schema):
        validator = jsonschema.Draft202012Validator(
            {"$defs": definitions, **as_json_schema(body_schema)}
        )
        mismatches += [f"{where}: {error.message}" for error in validator.iter_errors(value)]

    assert mismatches == []


def test_every_operation_documents_the_errors_it_may_answer(schema):
    # 401/403 with a bearer credential; 404 for an object in the path or a page past the
    # end; 400/415 wherever DRF parses a body (bad JSON, another content type).
    missing = []
    for method, path, operation in operations(schema):
        expected = set()
        parameters = operation.get("parameters", [])
        if operation.get("security") == [{"bearer": []}]:
            expected |= {"401", "403"}
        if any(parameter["in"] == "path" for parameter in parameters):
            expected.add("404")
        if any(parameter["name"] in {"page", "cursor"} for parameter in parameters):
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"400", "415"}
        for code in sorted(expected - operation["responses"].keys()):
            missing.append(f"{method} {path} {code}")
        for code in expected & operation["responses"].keys():
            body = operation["responses"][code]["content"]
            assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                f"{method} {path} {code}"
            )

    assert missing == []


def test_the_error_body_in_the_document_is_the_one_the_api_sends(schema):
    assert schema["components"]["schemas"]["Error"] == {
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


def test_logout_is_documented_as_a_bearer_delete_with_no_body(schema):
    operation = schema["paths"]["/api/v1/auth/token"]["delete"]

    assert operation["security"] == [{"bearer": []}]
    # 503: any operation's queries may be cancelled at the statement timeout
    assert sorted(operation["responses"]) == ["204", "401", "403", "503"]
    assert "content" not in operation["responses"]["204"]
    assert "requestBody" not in operation


def test_a_401_documents_its_bearer_challenge(schema):
    for method, path, operation in operations(schema):
        if "401" in operation["responses"]:
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"], (method, path)


# --- Every API test response is checked against the document (tests/openapi_responses.py) --


@pytest.mark.django_db
def test_an_answer_the_document_does_not_describe_fails_the_test(patient, nurse_client):
    response = nurse_client.get(f"/api/v1/patients/{patient.pk}")
    assert response.status_code == 200

    response.content = response.content.replace(b'"timezone":', b'"timezone":1,"_":')
    with pytest.raises(openapi_responses.UndocumentedResponse, match="timezone"):
        openapi_responses.check_response(response)


@pytest.mark.django_db
def test_a_status_the_document_does_not_list_fails_the_test(patient, nurse_client):
    response = nurse_client.get(f"/api/v1/patients/{patient.pk}")

    response.status_code = 418
    with pytest.raises(openapi_responses.UndocumentedResponse, match="418"):
        openapi_responses.check_response(response)
