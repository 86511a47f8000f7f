"""What every response tells the browser (config/settings.py, config/api.py): the
Content-Security-Policy on every page, admin and docs included, with nothing inline that it
would block; HSTS and the proxy's https header from the environment; no-store on the API;
Swagger UI from our own static files; and care teams' webhooks on https only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from alerts.models import CareTeam
from tests.conftest import client_with
from tests.factories import AlertFactory

ROOT = Path(__file__).resolve().parents[1]
HASH_OF_SELECT = "'sha256-biFQTroSCI3Z5BmsMGyEE2jFZdwjjG1Oe7JLytgH6jM='"  # this.select()
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'unsafe-hashes'", HASH_OF_SELECT],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def policy_of(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: sources}."""
    directives = [part.split() for part in response["Content-Security-Policy"].split(";")]
    return {name: sources for name, *sources in directives}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class InlineCode(HTMLParser):
    """The inline scripts (with their nonce), the inline event handlers and the external
    scripts and stylesheets of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_script_nonces: list[str | None] = []
        self.handlers: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [value for name, value in attrs if name.startswith("on")]
        if tag == "script" and "src" not in attributes:
            self.inline_script_nonces.append(attributes.get("nonce"))
        if tag == "script" and "src" in attributes:
            self.external.append(attributes["src"])
        if tag == "link" and attributes.get("rel") in ("stylesheet", "icon"):
            self.external.append(attributes["href"])


def inline_code(response) -> InlineCode:
    parser = InlineCode()
    parser.feed(response.content.decode())
    return parser


def nonce_of(response) -> str | None:
    found = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    return found.group(1) if found else None


# --- Content-Security-Policy --------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/login/", "/healthz", "/api/v1/me", "/api/schema/"])
def test_every_response_carries_the_policy(db, url):
    response = Client().get(url)

    assert policy_of(response) == POLICY


def test_the_admin_pages_run_no_inline_script_the_policy_blocks(
    db, superuser, nurse, coordinator, patient
):
    # given: the pages the care team works in, each as it is shown
    alert = AlertFactory(patient=patient)
    issued = logged_in(coordinator).post(
        reverse("admin:monitoring_patient_issue_app_token", args=[patient.pk])
    )
    pages = {
        "login": Client().get("/admin/login/"),
        "index": logged_in(superuser).get("/admin/"),
        "triage queue": logged_in(nurse).get("/admin/alerts/alert/"),
        "alert page": logged_in(nurse).get(f"/admin/alerts/alert/{alert.pk}/change/"),
        "patient page": logged_in(nurse).get(f"/admin/monitoring/patient/{patient.pk}/change/"),
        "credential issued": issued,
        "two-factor": logged_in(nurse).get("/admin/two-factor/"),
        "users": logged_in(superuser).get("/admin/auth/user/"),
    }

    for name, response in pages.items():
        # then: every inline script carries the response's nonce, and the only inline
        # handler is the one whose hash the policy allows
        assert response.status_code == 200, name
        code = inline_code(response)
        assert all(n is not None and n == nonce_of(response) for n in code.inline_script_nonces), (
            name
        )
        assert set(code.handlers) <= {"this.select()"}, name
        assert all(url.startswith("/") and not url.startswith("//") for url in code.external), name
    assert inline_code(pages["credential issued"]).handlers == ["this.select()"]


def test_the_docs_page_runs_its_inline_script_by_the_nonce_of_its_policy(db):
    response = Client().get("/api/docs/")

    code = inline_code(response)
    nonce = nonce_of(response)
    assert response.status_code == 200
    assert nonce is not None
    assert code.inline_script_nonces == [nonce]
    assert policy_of(response) == POLICY | {
        "script-src": ["'self'", f"'nonce-{nonce}'", "'unsafe-hashes'", HASH_OF_SELECT]
    }


def test_each_request_gets_its_own_nonce(db):
    first, second = Client().get("/api/docs/"), Client().get("/api/docs/")

    assert nonce_of(first) != nonce_of(second)


# --- The docs page loads Swagger UI from our own static files ------------------------------


def test_the_docs_page_loads_swagger_ui_from_this_origin(db):
    response = Client().get("/api/docs/")

    external = inline_code(response).external
    assert sorted(external) == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
    ]
    for url in external:
        assert finders.find(url.removeprefix("/static/")), url


# --- HTTPS ---------------------------------------------------------------------------------


def test_hsts_is_sent_on_https_responses_only(db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000

    over_https = Client().get("/healthz", secure=True)
    over_http = Client().get("/healthz")

    assert over_https["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in over_http


def test_behind_a_tls_proxy_its_header_makes_the_request_https(db, settings):
    settings.SECURE_HSTS_SECONDS = 600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    proxied = Client().get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    plain = Client().get("/healthz", HTTP_X_FORWARDED_PROTO="http")

    assert proxied["Strict-Transport-Security"] == "max-age=600"
    assert "Strict-Transport-Security" not in plain


def settings_under(env: dict[str, str]) -> list[str]:
    """The security settings as a fresh process reads them from `env`."""
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, "
        "getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.VIGIL_ALLOW_HTTP_WEBHOOKS, "
        "[str(n) for n in s.VIGIL_TRUSTED_PROXIES])"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "DJANGO_DEBUG"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()


def test_https_settings_come_from_the_environment():
    configured = settings_under(
        {
            "VIGIL_HSTS_SECONDS": "31536000",
            "VIGIL_HSTS_INCLUDE_SUBDOMAINS": "true",
            "VIGIL_SSL_REDIRECT": "true",
            "VIGIL_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "VIGIL_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
        }
    )
    defaults = settings_under({})

    assert configured == [
        "31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https') False "
        "['10.0.0.0/8', '192.0.2.1/32']"
    ]
    assert defaults == ["0 False False None False []"]


# --- API responses are not stored ----------------------------------------------------------


def test_api_responses_are_not_stored_by_any_cache(nurse_client, patient, anonymous_client):
    responses = {
        "list": nurse_client.get("/api/v1/patients"),
        "patient": nurse_client.get(f"/api/v1/patients/{patient.pk}"),
        "refused": anonymous_client.get(f"/api/v1/patients/{patient.pk}"),
        "not found": nurse_client.get("/api/v1/patients/999999"),
    }

    assert {name: r.status_code for name, r in responses.items()} == {
        "list": 200,
        "patient": 200,
        "refused": 401,
        "not found": 404,
    }
    for name, response in responses.items():
        assert response["Cache-Control"] == "no-store", name


def test_the_schema_holds_no_patient_data_and_may_be_cached(db):
    assert "Cache-Control" not in Client().get("/api/schema/")


def test_a_patient_app_token_reading_its_own_data_gets_no_store(patient):
    from monitoring.auth import issue_app_token

    response = client_with(issue_app_token(patient=patient)[1]).get("/api/v1/me")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


# --- Care teams' webhooks: https only, except in development --------------------------------


def care_team_form(**changes) -> dict:
    return {
        "name": "Anticoagulation clinic",
        "critical_escalation_minutes": "15",
        "warning_escalation_minutes": "240",
        "repeat_minutes": "60",
        "max_repeats": "3",
        "webhook_url": "",
        "webhook_secret": "s3cret",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **changes,
    }


def test_a_plain_http_webhook_is_refused_and_nothing_is_saved(superuser, settings):
    settings.VIGIL_ALLOW_HTTP_WEBHOOKS = False

    response = logged_in(superuser).post(
        "/admin/alerts/careteam/add/", care_team_form(webhook_url="http://ehr.example.org/hook")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "webhook_url": [
            "Use an https:// URL: the webhook names the patient, and plain http would send "
            "that in the clear."
        ]
    }
    assert CareTeam.objects.count() == 0


def test_an_https_webhook_is_saved(superuser, settings):
    settings.VIGIL_ALLOW_HTTP_WEBHOOKS = False

    response = logged_in(superuser).post(
        "/admin/alerts/careteam/add/", care_team_form(webhook_url="https://ehr.example.org/hook")
    )

    assert response.status_code == 302
    assert CareTeam.objects.get().webhook_url == "https://ehr.example.org/hook"


def test_in_development_a_local_http_receiver_is_allowed(superuser, settings):
    settings.VIGIL_ALLOW_HTTP_WEBHOOKS = True

    response = logged_in(superuser).post(
        "/admin/alerts/careteam/add/", care_team_form(webhook_url="http://127.0.0.1:9000/hook")
    )

    assert response.status_code == 302
    assert CareTeam.objects.get().webhook_url == "http://127.0.0.1:9000/hook"
