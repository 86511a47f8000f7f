"""The Content-Security-Policy in a real browser: the care team's pages and the API docs page
work under it, and Chromium reports no violation on any of them."""

from __future__ import annotations

from playwright.sync_api import expect

from alerts.models import CareTeamRole
from alerts.teams import sync_role_groups
from tests.browser.conftest import login
from tests.factories import MembershipFactory, UserFactory

# Chromium reports each violation as a `securitypolicyviolation` event and a console error
# ("Refused to …"); the listener is installed by the browser, outside the page's policy.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watched(page) -> list[str]:
    """`page`, recording the policy's violations: the returned list fills as they happen."""
    refused = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def test_the_docs_page_renders_the_api_under_the_policy(live_server, open_page):
    page = open_page()
    refused = watched(page)

    page.goto("/api/docs/")

    # Swagger UI ran (its inline start-up script, by nonce) and drew the operations.
    expect(
        page.locator(".opblock-summary-path", has_text="/api/v1/auth/token").first
    ).to_be_visible()
    assert violations(page) == []
    assert refused == []


def test_the_care_teams_pages_work_under_the_policy(clinic, open_page):
    page = open_page()
    refused = watched(page)
    login(page, clinic.nurse.username)
    patient = clinic.queue[0].patient

    for url in [
        "/admin/alerts/alert/",
        f"/admin/alerts/alert/{clinic.queue[0].pk}/change/",
        f"/admin/monitoring/patient/{patient.pk}/change/",
        "/admin/two-factor/",
    ]:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert violations(page) == [], url

    assert refused == []


def test_the_issued_credential_is_selected_on_focus_under_the_policy(clinic, open_page):
    # The page's one inline handler, onfocus="this.select()", is allowed by its hash.
    coordinator = UserFactory(username="cora")
    MembershipFactory(team=clinic.team, user=coordinator, role=CareTeamRole.COORDINATOR)
    sync_role_groups(users=[coordinator])
    patient = clinic.queue[0].patient
    page = open_page()
    refused = watched(page)
    login(page, "cora")

    page.goto(f"/admin/monitoring/patient/{patient.pk}/change/")
    page.get_by_role("button", name="Issue an app token").click()
    secret = page.locator("#issued-secret")
    secret.focus()

    assert secret.input_value().startswith("vgp_")
    assert page.evaluate(
        "[document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    ) == [0, len(secret.input_value())]
    assert violations(page) == []
    assert refused == []
