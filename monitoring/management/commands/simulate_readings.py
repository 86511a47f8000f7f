"""Post realistic readings for the demo patients through the HTTP API, as their apps would.

Each app asks the API who its patient is (GET /api/v1/me: time zone, protocols), then syncs
a few days of ordinary measurements taken at the patient's usual local times (one backlog
batch, as an app that was offline posts them) and today's readings (a second batch), one of
which crosses a threshold of each protocol: heart-failure weight gain, hypertensive crisis,
level-2 hypoglycaemia, critical INR, low SpO2 in COPD. The worker evaluates them like any
upload, so the care team's queue has real alerts to triage.

The tokens come from var/demo_tokens.json, written by seed_demo. Ids are uuid5 of patient,
type and time, and values are derived from the same: re-running reposts the same readings,
which the API reports as duplicates, not new rows. History sits at the patient's usual local
times on past days; today's crossings sit a few hours before the start of the current
six-hour block (UTC), so they are always recent enough to alert on (alerts are not raised
for readings older than VIGIL_STALE_READING_AGE), and a run in a later block posts them anew
(the open alert counts another occurrence), as a patient measuring again would.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.management.commands.seed_demo import TOKENS_FILE

# Fixed, so that the same reading gets the same id on every run.
NAMESPACE = uuid.UUID("5f3c1c8e-2f6a-4b8e-9a51-0d6c7e1f4a20")
BATCH_SIZE = 500  # settings.VIGIL_MAX_BATCH: the API's limit per request
REQUEST_TIMEOUT = 10.0
BLOCK_HOURS = 6
Values = Callable[[random.Random], dict]


@dataclass(frozen=True)
class Habit:
    """How a patient on a protocol measures one thing, and the reading today that crosses the
    protocol's default threshold (protocols.yaml, whose numbers are the clinical reference's)."""

    type: str
    local_times: tuple[clock, ...]
    normal: Values
    every_days: int = 1
    crossing: dict | None = None
    crossing_hours_ago: int = 1


HABITS: dict[str, list[Habit]] = {
    "heart_failure": [
        # Daily weighing after waking; > 0.9 kg gained in a day is the heart-failure warning.
        Habit(
            "weight",
            (clock(7, 0),),
            lambda r: {"value": round(r.uniform(81.7, 82.3), 1), "unit": "kg"},
            crossing={"value": 83.9, "unit": "kg"},
            crossing_hours_ago=4,
        ),
    ],
    "hypertension": [
        # Morning and evening home BP; > 180 systolic or > 120 diastolic is a crisis.
        Habit(
            "blood_pressure",
            (clock(7, 30), clock(20, 0)),
            lambda r: {
                "systolic": r.randint(118, 132),
                "diastolic": r.randint(72, 84),
                "pulse": r.randint(62, 78),
                "unit": "mmHg",
            },
            crossing={"systolic": 188, "diastolic": 116, "pulse": 96, "unit": "mmHg"},
            crossing_hours_ago=3,
        ),
    ],
    "diabetes": [
        # Fasting and before dinner; < 54 mg/dL is level-2 hypoglycaemia.
        Habit(
            "glucose",
            (clock(7, 15),),
            lambda r: {"value": r.randint(96, 128), "unit": "mg/dL", "context": "fasting"},
            crossing={"value": 48, "unit": "mg/dL", "context": "random"},
            crossing_hours_ago=1,
        ),
        Habit(
            "glucose",
            (clock(18, 30),),
            lambda r: {"value": r.randint(112, 168), "unit": "mg/dL", "context": "before_meal"},
        ),
    ],
    "anticoagulation": [
        # A point-of-care INR every other day for the demo (clinics test weekly or less);
        # >= 5.0 is critical.
        Habit(
            "inr",
            (clock(9, 0),),
            lambda r: {"value": round(r.uniform(2.2, 2.9), 1), "unit": "INR"},
            every_days=2,
            crossing={"value": 5.6, "unit": "INR"},
            crossing_hours_ago=2,
        ),
    ],
    "copd": [
        # Oximetry twice a day; <= 87 % is below the COPD target (88–92 %).
        Habit(
            "spo2",
            (clock(8, 0), clock(19, 0)),
            lambda r: {"value": r.randint(90, 94), "unit": "%"},
            crossing={"value": 85, "unit": "%"},
            crossing_hours_ago=5,
        ),
        Habit(
            "heart_rate",
            (clock(8, 0),),
            lambda r: {"value": r.randint(72, 90), "unit": "/min"},
        ),
    ],
}


def reading(external_id: str, type_: str, at: datetime, zone: ZoneInfo, values: Values | dict):
    """One API item; its id, and its values when drawn, follow from patient, type and time."""
    key = f"{external_id}|{type_}|{at.astimezone(UTC).isoformat()}"
    fields = values if isinstance(values, dict) else values(random.Random(key))
    return {
        "id": str(uuid.uuid5(NAMESPACE, key)),
        "type": type_,
        "measured_at": at.astimezone(zone).isoformat(timespec="seconds"),
        **fields,
    }


def demo_readings(
    *, external_id: str, zone: ZoneInfo, protocols: list[str], now: datetime, days: int
) -> tuple[list[dict], list[dict]]:
    """(history, today): the readings of `days` days before today, and today's crossings."""
    utc = now.astimezone(UTC)
    block = utc.replace(hour=utc.hour - utc.hour % BLOCK_HOURS, minute=0, second=0, microsecond=0)
    # A few minutes past the hour, as people measure; the same for one patient on every run.
    minutes = random.Random(external_id).randint(5, 50)
    history, today = [], []
    for code in protocols:
        for habit in HABITS.get(code, []):
            last_day = now.astimezone(zone).date()
            if habit.crossing is not None:
                ago = timedelta(hours=habit.crossing_hours_ago) - timedelta(minutes=minutes)
                at = block - ago
                today.append(reading(external_id, habit.type, at, zone, habit.crossing))
                # The crossing must be its local day's first reading of the type: day-over-
                # day rules (weight gain) compare each local day's first reading.
                last_day = at.astimezone(zone).date()
            for day in range(days, 0, -1):
                local_date = last_day - timedelta(days=day)
                if local_date.toordinal() % habit.every_days:
                    continue
                history += [
                    reading(
                        external_id, habit.type, local(local_date, slot, zone), zone, habit.normal
                    )
                    for slot in habit.local_times
                ]
    return history, today


def local(day: date, at: clock, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


class Command(BaseCommand):
    help = "Post a few days of readings, some crossing thresholds, for the demo patients."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--tokens",
            type=Path,
            default=None,
            help=f"{{external id: app token}} JSON (default: var/{TOKENS_FILE}, by seed_demo)",
        )
        parser.add_argument("--days", type=int, default=5, help="days of history (default 5)")
        parser.add_argument(
            "--wait", type=float, default=30, help="seconds to wait for the API to answer"
        )

    def handle(self, *args, base_url: str, tokens: Path | None, days: int, wait: float, **opts):
        path = tokens or settings.VAR_DIR / TOKENS_FILE
        try:
            apps = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CommandError(
                f"No demo tokens in {path} ({error}); run seed_demo first."
            ) from None
        now = datetime.now(UTC)
        # No proxy: an http_proxy in the environment must not route 127.0.0.1 elsewhere.
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, trust_env=False) as client:
            failures = sum(
                self._simulate(client, external_id, token, now=now, days=days, wait=wait)
                for external_id, token in apps.items()
            )
        if failures:
            raise CommandError(f"{failures} readings were not stored; see above.")

    def _simulate(self, client, external_id, token, *, now, days, wait) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        me = request(client, "GET", "/api/v1/me", headers=headers, wait=wait)
        history, today = demo_readings(
            external_id=external_id,
            zone=ZoneInfo(me["timezone"]),
            protocols=me["protocols"],
            now=now,
            days=days,
        )
        counts = {"created": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
        failures = 0
        # The backlog first, in batches the API takes, then what was measured today.
        batches = [history[i : i + BATCH_SIZE] for i in range(0, len(history), BATCH_SIZE)]
        for batch in [*batches, today]:
            if not batch:
                continue
            body = request(
                client,
                "POST",
                "/api/v1/readings",
                headers=headers,
                json={"readings": batch},
                wait=wait,  # a retried batch is safe: its ids make repeats duplicates
            )
            for result in body["results"]:
                counts[result["status"]] += 1
                if result["status"] in ("conflict", "rejected"):
                    failures += 1
                    self.stderr.write(f"  {external_id} {result['id']}: {result.get('errors')}")
        self.stdout.write(
            f"simulate_readings: {external_id} ({', '.join(me['protocols'])}): "
            + ", ".join(f"{count} {status}" for status, count in counts.items())
        )
        return failures


def request(client: httpx.Client, method: str, url: str, *, wait: float = 0, **kwargs) -> dict:
    """The JSON answer; retries a server that is not up yet or answers 5xx for `wait` s."""
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            response = client.request(method, url, **kwargs)
            if response.status_code < 500:
                break
            problem = f"{response.status_code} from {url}"
        except httpx.TransportError as error:
            problem = f"{url}: {error!r}"
        if time.monotonic() + delay > deadline:
            raise CommandError(f"The API did not answer: {problem}")
        time.sleep(delay)
        delay = min(delay * 2, 5)
    if response.status_code >= 400:
        raise CommandError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json()
