"""Real-browser tests: Playwright drives Debian's Chromium against a live server.

The browser is /usr/bin/chromium from Debian's package (scripts/test installs it as root);
Playwright's own browser download does not work on our machines. pytest-django's
`live_server` runs the app in a thread of the test process on the test database, so tests
using it are transactional: the data they make is committed and the server sees it.

The clinic is built the way the product builds it: patients enrolled on protocols, readings
recorded as the app posts them and evaluated by the same function the worker runs, so every
alert on screen was raised by the patient's own rules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from alerts.models import Alert, CareTeam
from alerts.teams import NewMember, create_care_team
from monitoring.enrolment import enrol_patient
from monitoring.evaluation import evaluate_pending_readings
from monitoring.ingest import record_readings
from tests.factories import ReadingItemFactory, UserFactory

CHROMIUM = Path("/usr/bin/chromium")
# docs/architecture.md, "Tried on this machine": headless Chromium as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def pytest_collection_modifyitems(items):
    """Every test here is a browser test: `-m "not browser"` leaves them all out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser():
    """Chromium for this package's tests, closed after the last of them."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: run ./scripts/test as root "
            "(it installs Debian's package), or `sudo apt-get install chromium`; "
            "deselect them with -m 'not browser'.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it is started;
    # Django then refuses ORM calls from the thread (SynchronousOnlyOperation), though the
    # tests' calls between browser steps, and the database flush after each, are plain
    # synchronous code. Allowed while the browser runs, and not for tests after this package.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# The widths the workspace must fit without scrolling sideways (issue 14): a 1024 px laptop
# or tablet, a 1440 px desktop. Parametrize a test with `@pytest.mark.parametrize("width",
# WIDTHS)` and open its page with open_page(width=width).
WIDTHS = (1024, 1440)


@pytest.fixture
def open_page(browser, live_server):
    """open_page(width=1280, timezone_id=None) -> a new page in its own browser context (its
    own cookies: one user), `width` px wide, on the browser clock of `timezone_id`."""
    contexts = []

    def open_(width: int = 1280, timezone_id: str | None = None):
        options = {"timezone_id": timezone_id} if timezone_id else {}
        context = browser.new_context(
            base_url=live_server.url,
            viewport={"width": width, "height": 900},
            locale="en-GB",
            **options,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ (git-ignored): screenshots to look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def overflow_of(page) -> int:
    """How many CSS pixels the page is wider than the window: 0 when nothing scrolls
    sideways."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def overflowing(page, limit: int = 12) -> list[str]:
    """The elements reaching past the window's right edge (tag#id.class and right edge, px):
    what to fix when overflow_of(page) is not 0."""
    return page.evaluate(
        """limit => {
          const width = window.innerWidth, found = [];
          for (const element of document.querySelectorAll("body *")) {
            const box = element.getBoundingClientRect();
            if (box.width > 0 && box.right > width + 0.5) {
              const classes = typeof element.className === "string" && element.className
                ? "." + element.className.trim().split(/\\s+/).join(".") : "";
              const within = element.parentElement && element.parentElement.closest("[id]");
              found.push(element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
                + classes + (within ? " in #" + within.id : "") + " " + Math.round(box.right));
            }
          }
          return found.slice(0, limit);
        }""",
        limit,
    )


@pytest.fixture
def screenshot(artifacts):
    """screenshot(page, name): a full-page PNG in test-artifacts/screenshots/ (kept by CI:
    .ci/run says where), named after the test and `name`."""
    folder = artifacts / "screenshots"
    folder.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def _broker_queues_purged() -> Iterator[None]:
    """Recording and evaluating publish evaluation and notification tasks that no worker in
    these tests consumes: they are dropped afterwards so no later worker test picks them up."""
    yield
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
    queues |= {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(*queues)
    client.close()


# --- The clinic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Clinic:
    team: CareTeam
    nurse: object
    other_nurse: object
    # Team A's open alerts in the order triage wants them: critical first, then oldest.
    queue: list[Alert]
    other_team_alert: Alert


def login(page, username: str, password: str = PASSWORD) -> None:
    """Log in through the admin's login form, starting where a user starts: /admin/."""
    page.goto("/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def post_readings(patient, now: datetime, readings: list[tuple[timedelta, str, dict]]) -> None:
    """Record readings as the patient's app posts them (one batch), then evaluate them as the
    worker would. Each reading: (age, type, fields)."""
    items = [
        ReadingItemFactory(type=kind, measured_at=(now - age).isoformat(), **fields)
        for age, kind, fields in readings
    ]
    result = record_readings(patient=patient, items=items, received_at=now)
    assert result.created == len(items), result.as_dict()
    evaluate_pending_readings(patient_id=patient.pk, now=now)


def daily(kind: str, values: list[dict], *, days: int = 5, hour: int = 0) -> list:
    """One reading a day for the `days` days before today, cycling through `values`."""
    return [
        (timedelta(days=day, hours=hour), kind, values[day % len(values)])
        for day in range(days, 0, -1)
    ]


@pytest.fixture
def clinic(live_server, _broker_queues_purged) -> Clinic:
    now = timezone.now()
    nurse = UserFactory(username="nina", first_name="Nina", last_name="Nurse")
    other_nurse = UserFactory(username="otto", first_name="Otto", last_name="Other")
    team = create_care_team(name="Cardiology clinic", members=[NewMember(nurse, "nurse")])
    other_team = create_care_team(name="Lung clinic", members=[NewMember(other_nurse, "nurse")])

    def enrol(external_id, name, zone, protocols, care_team=team):
        return enrol_patient(
            external_id=external_id,
            name=name,
            timezone=zone,
            care_team=care_team,
            protocols=protocols,
        )

    # A week of ordinary readings, then what crossed the patient's thresholds today.
    hf = enrol("BT-001", "Harriet Ford", "America/New_York", ["heart_failure", "hypertension"])
    post_readings(
        hf,
        now,
        [
            *daily("blood_pressure", [{"systolic": 128, "diastolic": 80}], hour=2),
            *daily("weight", [{"value": 82.0}, {"value": 82.3}], hour=3),
            (timedelta(hours=1), "blood_pressure", {"systolic": 192, "diastolic": 118}),
        ],
    )
    diabetes = enrol("BT-002", "Dmitri Bauer", "Europe/Berlin", ["diabetes"])
    post_readings(
        diabetes,
        now,
        [
            *daily("glucose", [{"value": 118}, {"value": 131}]),
            (timedelta(hours=10), "glucose", {"value": 214}),  # level 1 hyperglycaemia: info
            (timedelta(hours=3), "glucose", {"value": 48}),  # level 2 hypoglycaemia: critical
        ],
    )
    copd = enrol("BT-003", "Carla Ortiz", "Europe/Madrid", ["copd"])
    post_readings(
        copd,
        now,
        [
            *daily("spo2", [{"value": 92}, {"value": 91}]),
            (timedelta(hours=8), "spo2", {"value": 86}),  # below the COPD target: warning
        ],
    )
    warfarin = enrol("BT-004", "Wen Li", "Asia/Singapore", ["anticoagulation"])
    post_readings(
        warfarin,
        now,
        [
            *daily("inr", [{"value": 2.4}, {"value": 2.7}]),
            (timedelta(hours=5), "inr", {"value": 3.6}),  # above the 2.0–3.0 range: warning
        ],
    )
    outsider = enrol("BT-101", "Olaf Berg", "Europe/Oslo", ["copd"], care_team=other_team)
    post_readings(outsider, now, [(timedelta(hours=2), "spo2", {"value": 80})])

    queue = list(Alert.objects.filter(patient__care_team=team))
    by_title = {alert.title: alert for alert in queue}
    expected = [
        "Glucose is below 54 mg/dL",  # critical, 3 h ago
        "Systolic is above 180 mmHg or diastolic is above 120 mmHg",  # critical, 1 h ago
        "SpO2 is at or below 87 %",  # warning, 8 h ago
        "INR is below 2 or above 3",  # warning, 5 h ago
        "Glucose is above 180 mg/dL and at or below 250 mg/dL",  # info, 10 h ago
    ]
    assert sorted(by_title) == sorted(expected), sorted(by_title)
    return Clinic(
        team=team,
        nurse=nurse,
        other_nurse=other_nurse,
        queue=[by_title[title] for title in expected],
        other_team_alert=Alert.objects.get(patient=outsider),
    )
