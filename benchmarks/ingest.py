"""Ingestion benchmark: the batch endpoint vs a textbook DRF endpoint vs COPY, same rows.

    .venv/bin/python benchmarks/ingest.py [--readings N] [--quick]

One run, on PostgreSQL, into a database of its own (dropped and re-created; default
postgres://postgres@127.0.0.1:5432/vigil_bench), with the product's schema (migrate):

  copy       psycopg `COPY monitoring_reading FROM STDIN` of the same rows: the limit.
             The rows (canonical values, fingerprints) are computed beforehand by the
             product's own validate_item/_rows and are NOT timed; the timed part is
             COPY (psycopg's row formatting included) and the commit.
  batch500   POST /api/v1/readings, batches of 500 items, the full stack under gunicorn.
  batch100   the same with batches of 100.
  textbook   benchmarks/textbook.py: ModelSerializer + CreateAPIView, one item per request,
             under gunicorn with benchmarks.settings (the product's settings + that URL).
  fhir500    POST /fhir, transaction Bundles of 500 Observation entries, the same
             measurements as FHIR R4 (LOINC/UCUM from the clinical reference, identifier
             urn:uuid:<the item's id>). FHIR carries no medication doses and no glucose meal
             context: this phase posts the workload's measurements (doses left out) and its
             table must equal the COPY phase's measurement rows in every content column but
             source, context and fingerprint (which hashes the context).
  nightscout a CGM workload (sgv only, 288 per request: a day of CGM) through each
             patient's Nightscout base URL (POST /nightscout/<slug>/api/v1/entries), beside
             `batch288`, the same readings as native items in batches of 288; the two
             phases' rows must be identical but for `source` (issue 12).

Every phase starts from an emptied readings table (TRUNCATE + CHECKPOINT) and must end with
exactly the expected rows, whose content (everything but id and received_at) must be
byte-identical across phases; every HTTP response must be 201 (and, for batches, report every
item as created). Readings/s counts rows stored (a blood pressure with a pulse is two rows).

Load comes from separate client processes on loopback (http.client, bodies serialised
before the clock starts), pulling requests from a shared counter so none idles at the end.
Gunicorn runs 2 workers (2 cores), persistent DB connections (CONN_MAX_AGE from the product
settings), Celery broker on Redis DB 10 (one evaluation task per batch / per textbook reading
is published; no worker runs; that Redis DB is flushed at the end).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# Run as a script: import the project, not sibling modules of this file by bare name.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/vigil_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"
BATCH_PATH = "/api/v1/readings"
TEXTBOOK_PATH = "/bench/textbook/readings"
FHIR_PATH = "/fhir"
NIGHTSCOUT_PREFIX = "/nightscout/"
SEED = 20260301
TABLE = "monitoring_reading"
KEYS = "monitoring_readingkey"
# Content columns compared across phases (id, received_at differ by design).
CONTENT_COLUMNS = (
    "patient_id, client_id, metric, value, unit, systolic, diastolic, sent_value, sent_unit, "
    "context, medication, dose_status, scheduled_for, measured_at, utc_offset_minutes, source, "
    "device_id, device_serial, part_of, fingerprint"
)
# What a FHIR upload of the same measurements must reproduce (see fhir500 above).
FHIR_COMPARED_COLUMNS = ", ".join(
    column
    for column in CONTENT_COLUMNS.split(", ")
    if column not in ("source", "context", "fingerprint")
)


# --- The workload: deterministic items ------------------------------------------------------

OFFSETS = ["Z", "+00:00", "-05:00", "+01:00", "+05:30", "-08:00"]
BASE_TIME = datetime(2025, 6, 1, tzinfo=UTC)


def _timestamp(rng: random.Random, minutes: int) -> str:
    offset = rng.choice(OFFSETS)
    moment = BASE_TIME + timedelta(minutes=minutes, seconds=rng.randrange(60))
    if offset in ("Z", "+00:00"):
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset
    sign = 1 if offset[0] == "+" else -1
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
    return (moment + delta).strftime("%Y-%m-%dT%H:%M:%S") + offset


def make_item(rng: random.Random, minutes: int) -> dict:
    """One API item of a mix like a clinic's uploads (glucose-heavy, BP usually with pulse)."""
    kind = rng.choices(
        [
            "glucose_mg", "glucose_mmol", "bp_pulse", "bp", "weight_kg", "weight_lb", "spo2",
            "heart_rate", "inr", "temp_c", "temp_f", "dose",
        ],
        weights=[24, 10, 14, 4, 7, 4, 8, 8, 4, 4, 2, 11],
    )[0]  # fmt: skip
    item: dict = {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
    item["measured_at"] = _timestamp(rng, minutes)
    if kind == "glucose_mg":
        item |= {"type": "glucose", "value": rng.randint(55, 320), "unit": "mg/dL"}
        item["context"] = rng.choice(["fasting", "before_meal", "after_meal", "bedtime", "random"])
    elif kind == "glucose_mmol":
        item |= {"type": "glucose", "value": round(rng.uniform(3.2, 18.0), 1), "unit": "mmol/L"}
    elif kind in ("bp_pulse", "bp"):
        systolic = rng.randint(95, 185)
        item |= {"type": "blood_pressure", "systolic": systolic, "unit": "mmHg"}
        item["diastolic"] = rng.randint(55, min(systolic - 15, 115))
        if kind == "bp_pulse":
            item["pulse"] = rng.randint(48, 120)
    elif kind == "weight_kg":
        item |= {"type": "weight", "value": round(rng.uniform(48, 140), 1), "unit": "kg"}
    elif kind == "weight_lb":
        item |= {"type": "weight", "value": round(rng.uniform(105, 310), 1), "unit": "lb"}
    elif kind == "spo2":
        item |= {"type": "spo2", "value": rng.randint(86, 100), "unit": "%"}
    elif kind == "heart_rate":
        item |= {"type": "heart_rate", "value": rng.randint(45, 130)}
        if rng.random() < 0.5:
            item["unit"] = "/min"
    elif kind == "inr":
        item |= {"type": "inr", "value": round(rng.uniform(1.2, 4.5), 1)}
    elif kind == "temp_c":
        item |= {"type": "temperature", "value": round(rng.uniform(35.5, 39.8), 1), "unit": "Cel"}
    elif kind == "temp_f":
        item |= {"type": "temperature", "value": round(rng.uniform(96, 103.5), 1), "unit": "°F"}
    else:
        item |= {
            "type": "dose",
            "medication": rng.choice(["metformin-500", "lisinopril-10", "warfarin-5"]),
            "status": "taken" if rng.random() < 0.85 else "skipped",
            "scheduled_for": _timestamp(rng, minutes - 10),
        }
    return item


def make_workload(readings: int, patients: int) -> list[list[dict]]:
    """Items per patient, deterministic for (readings, patients)."""
    rng = random.Random(SEED)
    per_patient: list[list[dict]] = [[] for _ in range(patients)]
    for index in range(readings):
        per_patient[index % patients].append(make_item(rng, minutes=index))
    return per_patient


# --- Database and broker setup --------------------------------------------------------------


def setup_database(database_url: str, *, prefix: str = "vigil_bench") -> None:
    """Drop and re-create the benchmark database (never another one: its name must start
    with the benchmark's own `prefix`)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name.startswith(prefix):
        raise SystemExit(f"refusing to drop database {name!r}: its name must start {prefix}")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    # The readings table is partitioned by month (PostgreSQL): the workload's months get
    # their partitions, as the beat job makes them ahead in production, not DEFAULT.
    from monitoring.partitions import add_months, create_month_partition, month_start

    for offset in range(-1, 3):
        create_month_partition(add_months(month_start(BASE_TIME), offset))


@dataclass
class Patients:
    ids: list[int]
    tokens: list[str]
    warmup_id: int
    warmup_token: str


def create_patients(count: int) -> Patients:
    from alerts.models import CareTeam
    from monitoring.auth import issue_app_token
    from monitoring.enrolment import enrol_patient

    team = CareTeam.objects.create(name="Benchmark clinic")
    ids, tokens = [], []
    for index in range(count + 1):
        patient = enrol_patient(
            external_id=f"BENCH-{index:04d}",
            name=f"Benchmark patient {index}",
            timezone="Europe/Amsterdam",
            care_team=team,
            protocols=["diabetes", "hypertension"],
        )
        _token, plaintext = issue_app_token(patient=patient)
        ids.append(patient.pk)
        tokens.append(plaintext)
    return Patients(ids[1:], tokens[1:], ids[0], tokens[0])


def canonical_rows(per_patient: list[list[dict]], patient_ids: list[int]) -> list[tuple]:
    """The rows the product would write, from the product's own validation and conversion."""
    from django.utils import timezone as dj_timezone

    from monitoring.ingest import ValidReading, _rows, validate_item
    from monitoring.models import ReadingSource

    now = dj_timezone.now()
    rows: list[tuple] = []
    for items, patient_id in zip(per_patient, patient_ids, strict=True):
        valid = [validate_item(item, now=now) for item in items]
        bad = [v for v in valid if not isinstance(v, ValidReading)]
        if bad:
            raise SystemExit(f"workload item rejected by the product's validation: {bad[0]}")
        rows += _rows(
            valid,
            patient_id=patient_id,
            received_at=now,
            source=ReadingSource.APP,
            devices={},
            authenticated_device=None,
        )
    return rows


def pg_connect(database_url: str):
    import psycopg

    return psycopg.connect(database_url, autocommit=True)


def empty_table(database_url: str) -> None:
    with pg_connect(database_url) as conn:
        # The idempotency keys too: a batch phase must find every item new.
        conn.execute(f"TRUNCATE {TABLE}, {KEYS} RESTART IDENTITY CASCADE")
        conn.execute("CHECKPOINT")


def table_state(
    database_url: str, patient_ids: list[int], columns: str = CONTENT_COLUMNS
) -> tuple[int, str]:
    """(rows, md5 of their content in key order) for the benchmark patients; with the FHIR
    columns, of their measurements only."""
    measurements = " AND metric <> 'dose'" if columns == FHIR_COMPARED_COLUMNS else ""
    with pg_connect(database_url) as conn:
        count, digest = conn.execute(
            f"SELECT count(*), md5(string_agg(ROW({columns})::text, E'\\n' "
            f"ORDER BY patient_id, client_id)) FROM {TABLE} WHERE patient_id = ANY(%s)"
            f"{measurements}",
            [patient_ids],
        ).fetchone()
    return count, digest or ""


def broker_queue_length(redis_client) -> int:
    # Celery's Redis transport keeps the 'evaluation' queue as a list of that name.
    return int(redis_client.llen("evaluation"))


# --- gunicorn -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path
    description: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_gunicorn(
    *, settings_module: str, env: dict, workers: int, worker_class: str, threads: int, logdir: Path
) -> Server:
    port = free_port()
    log_path = logdir / f"gunicorn-{settings_module}-{port}.log"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", worker_class,
        "--timeout", "120",
        "--log-level", "warning",
        "--error-logfile", str(log_path),
    ]  # fmt: skip
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": settings_module},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    description = f"gunicorn {workers}x{worker_class}" + (
        f"({threads} threads)" if worker_class == "gthread" else ""
    )
    server = Server(process, port, log_path, description)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited at start:\n{server.log_tail()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"gunicorn did not become healthy:\n{server.log_tail()}")


# --- Load generation ------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    token: str
    body: bytes
    items: int
    expect: int = 201  # a Bundle answers 200 with a 201 per entry


@dataclass
class ClientReport:
    started: float = 0.0
    finished: float = 0.0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timed_out: bool = False


# Set in the parent before the client processes fork; read-only in them.
_REQUESTS: list[Request] = []


def _client(port: int, counter, barrier, deadline_seconds: float, queue) -> None:
    report = ClientReport()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    barrier.wait()
    report.started = time.monotonic()
    deadline = report.started + deadline_seconds
    total = len(_REQUESTS)
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= total:
            break
        if time.monotonic() > deadline:
            report.timed_out = True
            break
        request = _REQUESTS[index]
        headers = {"Content-Type": "application/json"}
        if request.path.startswith(NIGHTSCOUT_PREFIX):
            headers["api-secret"] = request.token  # the secret's SHA-1 hex, as uploaders send
        else:
            headers["Authorization"] = f"Bearer {request.token}"
        try:
            conn.request("POST", request.path, request.body, headers)
            response = conn.getresponse()
            payload = response.read()
            if response.will_close:
                conn.close()  # sync workers close after each response; reconnect next time
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            report.problems.append(f"request {index}: {error!r}")
            report.statuses[0] = report.statuses.get(0, 0) + 1
            continue
        report.requests += 1
        report.statuses[response.status] = report.statuses.get(response.status, 0) + 1
        if response.status != request.expect:
            if len(report.problems) < 5:
                report.problems.append(f"request {index}: {response.status} {payload[:300]!r}")
            continue
        if request.path.startswith(NIGHTSCOUT_PREFIX) and len(json.loads(payload)) != request.items:
            report.problems.append(f"request {index}: not every entry stored: {payload[:300]!r}")
        if request.path == BATCH_PATH:
            result = json.loads(payload)
            if result["created"] != request.items or result["rejected"] or result["duplicates"]:
                report.problems.append(
                    f"request {index}: created {result['created']} of {request.items}: "
                    f"{payload[:300]!r}"
                )
        elif request.path == FHIR_PATH:
            entries = json.loads(payload)["entry"]
            created = sum(1 for entry in entries if entry["response"]["status"] == "201 Created")
            if created != request.items:
                report.problems.append(
                    f"request {index}: created {created} of {request.items}: {payload[:300]!r}"
                )
    report.finished = time.monotonic()
    conn.close()
    queue.put(report)


def drive(port: int, requests: list[Request], connections: int, deadline: float) -> dict:
    """Send the requests over `connections` client processes; wall time and what came back."""
    global _REQUESTS
    _REQUESTS = requests
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("l", 0)
    barrier = ctx.Barrier(connections)
    queue = ctx.Queue()
    processes = [
        ctx.Process(target=_client, args=(port, counter, barrier, deadline, queue), daemon=True)
        for _ in range(connections)
    ]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=deadline + 300) for _ in processes]
    for process in processes:
        process.join()
    _REQUESTS = []
    statuses: dict[int, int] = {}
    for report in reports:
        for code, count in report.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
    return {
        "seconds": max(r.finished for r in reports) - min(r.started for r in reports),
        "requests": sum(r.requests for r in reports),
        "statuses": statuses,
        "problems": [p for r in reports for p in r.problems],
        "timed_out": any(r.timed_out for r in reports),
    }


def batch_requests(per_patient: list[list[dict]], tokens: list[str], size: int) -> list[Request]:
    chunks = []
    for items, token in zip(per_patient, tokens, strict=True):
        chunks.append(
            [
                Request(BATCH_PATH, token, json.dumps({"readings": items[i : i + size]}).encode(),
                        len(items[i : i + size]))
                for i in range(0, len(items), size)
            ]
        )  # fmt: skip
    # Interleave patients, so concurrent requests are mostly for different patients.
    return [request for group in zip_longest_flat(chunks) for request in group]


def textbook_requests(per_patient: list[list[dict]], tokens: list[str]) -> list[Request]:
    chunks = [
        [Request(TEXTBOOK_PATH, token, json.dumps(item).encode(), 1) for item in items]
        for items, token in zip(per_patient, tokens, strict=True)
    ]
    return [request for group in zip_longest_flat(chunks) for request in group]


def item_observation(item: dict, patient_id: int) -> dict:
    """A workload item as the FHIR Observation a device platform would send: codes from
    the clinical reference (interop.fhir.codes), UCUM codes for the item's unit spellings."""
    from interop.fhir import codes

    ucum = {"mmHg": "mm[Hg]", "lb": "[lb_av]", "°F": "[degF]"}
    metric = item["type"]
    unit = ucum.get(item.get("unit"), item.get("unit")) or codes.canonical_unit(metric)

    def quantity(value, code):
        return {"value": value, "system": codes.UCUM, "code": code}

    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{item['id']}"}],
        "status": "final",
        "code": {"coding": [codes.emitted_codings(metric)[0]]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": item["measured_at"],
    }
    if metric == "blood_pressure":
        bp = codes.blood_pressure_codes()
        resource["component"] = [
            {"code": {"coding": [code.coding()]}, "valueQuantity": quantity(item[name], unit)}
            for name, code in (("systolic", bp.systolic), ("diastolic", bp.diastolic))
        ]
        if "pulse" in item:
            resource["component"].append(
                {"code": {"coding": [codes.emitted_codings("heart_rate")[0]]},
                 "valueQuantity": quantity(item["pulse"], codes.canonical_unit("heart_rate"))}
            )  # fmt: skip
    else:
        resource["valueQuantity"] = quantity(item["value"], unit)
    return resource


def fhir_bundle(items: list[dict], patient_id: int) -> bytes:
    request = {"method": "POST", "url": "Observation"}
    entries = [
        {"resource": item_observation(item, patient_id), "request": request} for item in items
    ]
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


def fhir_requests(
    per_patient: list[list[dict]], patient_ids: list[int], tokens: list[str], size: int
) -> list[Request]:
    chunks = []
    for items, patient_id, token in zip(per_patient, patient_ids, tokens, strict=True):
        measurements = [item for item in items if item["type"] != "dose"]
        chunks.append(
            [
                Request(FHIR_PATH, token, fhir_bundle(measurements[i : i + size], patient_id),
                        len(measurements[i : i + size]), expect=200)
                for i in range(0, len(measurements), size)
            ]
        )  # fmt: skip
    return [request for group in zip_longest_flat(chunks) for request in group]


def zip_longest_flat(lists: list[list]) -> list[list]:
    longest = max(len(chunk) for chunk in lists)
    return [[chunk[i] for chunk in lists if i < len(chunk)] for i in range(longest)]


def warm_up(
    server: Server, path: str, token: str, connections: int, rng_seed: int, patient_id: int
) -> None:
    """Load every worker's code, DB and broker connections before the clock runs."""
    rng = random.Random(rng_seed)
    requests = []
    for _ in range(connections * 4):
        items = [make_item(rng, minutes=-1000) for _ in range(2)]
        if path == FHIR_PATH:
            items = [item for item in items if item["type"] != "dose"] or [
                {**items[0], "type": "heart_rate", "value": 60}
            ]
            requests.append(
                Request(path, token, fhir_bundle(items, patient_id), len(items), expect=200)
            )
            continue
        body = {"readings": items} if path == BATCH_PATH else items[0]
        requests.append(
            Request(path, token, json.dumps(body).encode(), 2 if path == BATCH_PATH else 1)
        )
    outcome = drive(server.port, requests, connections, deadline=60)
    expected = {200} if path == FHIR_PATH else {201}
    if outcome["problems"] or set(outcome["statuses"]) != expected:
        raise SystemExit(
            f"warm-up failed: {outcome['statuses']} {outcome['problems'][:3]}\n{server.log_tail()}"
        )


# --- Phases ---------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    rows: int
    seconds: float
    detail: str = ""
    runs: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


class BenchmarkFailure(Exception):
    pass


def verify_table(
    database_url: str,
    patients: Patients,
    expected_rows: int,
    digest: str,
    name: str,
    columns: str = CONTENT_COLUMNS,
):
    count, found = table_state(database_url, patients.ids, columns)
    if count != expected_rows:
        raise BenchmarkFailure(f"{name}: {count} rows in the table, expected {expected_rows}")
    if digest and found != digest:
        raise BenchmarkFailure(f"{name}: table content differs from the COPY phase's rows")
    return found


def run_copy(database_url: str, rows: list[tuple], patients: Patients, repeat: int):
    from monitoring.ingest import COLUMNS

    seconds, digest = [], ""
    for _ in range(repeat):
        empty_table(database_url)
        with pg_connect(database_url) as conn:
            conn.autocommit = False
            with conn.cursor() as cursor:
                started = time.perf_counter()
                with cursor.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
                seconds.append(time.perf_counter() - started)
        digest = verify_table(database_url, patients, len(rows), "", "copy")
    return PhaseResult(
        "copy", len(rows), statistics.median(seconds), "psycopg COPY", seconds
    ), digest


def run_http_phase(
    *,
    name: str,
    server: Server,
    requests: list[Request],
    expected_rows: int,
    digest: str,
    database_url: str,
    patients: Patients,
    redis_client,
    connections: int,
    deadline: float,
    repeat: int,
    columns: str = CONTENT_COLUMNS,
) -> PhaseResult:
    warm_up(
        server,
        requests[0].path,
        patients.warmup_token,
        connections,
        rng_seed=len(name),
        patient_id=patients.warmup_id,
    )
    seconds = []
    for _ in range(repeat):
        empty_table(database_url)
        queued_before = broker_queue_length(redis_client)
        outcome = drive(server.port, requests, connections, deadline)
        if outcome["timed_out"]:
            raise BenchmarkFailure(
                f"{name}: stopped at the {deadline:.0f} s limit after {outcome['requests']} of "
                f"{len(requests)} requests (use fewer --readings or a larger --deadline)"
            )
        if outcome["problems"] or set(outcome["statuses"]) != {requests[0].expect}:
            raise BenchmarkFailure(
                f"{name}: responses {outcome['statuses']}; {outcome['problems'][:5]}\n"
                f"{server.log_tail()}"
            )
        if outcome["requests"] != len(requests):
            raise BenchmarkFailure(f"{name}: {outcome['requests']} of {len(requests)} answered")
        verify_table(database_url, patients, expected_rows, digest, name, columns)
        published = broker_queue_length(redis_client) - queued_before
        if published != len(requests):
            # Fewer is by design: uploads coalesce their evaluation wake-ups while one is
            # still on its way (config.celery.enqueue_coalesced_on_commit; no worker runs here).
            print(
                f"  note: {name} published {published} evaluation messages for "
                f"{len(requests)} requests (coalesced wake-ups)",
                file=sys.stderr,
            )
        seconds.append(outcome["seconds"])
        print(
            f"  {name}: {expected_rows} rows in {outcome['seconds']:.2f} s "
            f"({expected_rows / outcome['seconds']:,.0f}/s), {len(requests)} requests all "
            f"{requests[0].expect}"
        )
    return PhaseResult(
        name,
        expected_rows,
        statistics.median(seconds),
        f"{len(requests)} requests, {connections} connections, {server.description}",
        seconds,
    )


# --- Nightscout entries (issue 12) ----------------------------------------------------------
#
# A CGM's day per request: 288 sgv entries (one every 5 minutes) POSTed to each patient's
# Nightscout base URL, beside the native batch endpoint posting the same readings as native
# items in batches of the same size (`batch288`). The rows must be the same: the table's
# content, less `source` (app vs nightscout), is compared between the two phases, so the
# Nightscout mapping is checked to store exactly what the native items store.

NIGHTSCOUT_ENTRIES = 288
CGM_DIRECTIONS = ["Flat", "FortyFiveUp", "FortyFiveDown", "SingleUp", "SingleDown"]
CGM_DEVICE = "xDrip-DexcomG6"
CGM_CONTENT_COLUMNS = CONTENT_COLUMNS.replace(" source,", "")


def make_cgm_workload(readings: int, patients: int) -> list[list[dict]]:
    """sgv entries per patient as uploaders send them, deterministic for (readings, patients)."""
    rng = random.Random(SEED + 12)
    base = int(BASE_TIME.timestamp() * 1000)
    per_patient: list[list[dict]] = [[] for _ in range(patients)]
    for index in range(readings):
        entries = per_patient[index % patients]
        date = base + len(entries) * 300_000
        entries.append({
            "type": "sgv",
            "sgv": rng.randint(40, 400),
            "date": date,
            "dateString": _iso_ms(date),
            "direction": rng.choice(CGM_DIRECTIONS),
            "device": CGM_DEVICE,
        })  # fmt: skip
    return per_patient


def _iso_ms(date: int) -> str:
    moment = datetime.fromtimestamp(date / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def native_cgm_items(entries: list[dict]) -> list[dict]:
    """The same readings as native items, written here independently of the mapping: the id
    Nightscout's key (type and date) derives, the time, mg/dL, the device, entry device."""
    from interop.nightscout.documents import NAMESPACE

    return [
        {
            "id": str(uuid.uuid5(NAMESPACE, f"sgv:{entry['date']}")),
            "type": "glucose",
            "measured_at": entry["dateString"],
            "value": entry["sgv"],
            "unit": "mg/dL",
            "device": entry["device"],
            "entry": "device",
        }
        for entry in entries
    ]


def issue_uploaders(patients: Patients) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """(slug, SHA-1 hex of the secret) per patient, and the warm-up patient's."""
    import hashlib

    from interop.nightscout.uploaders import issue_uploader
    from monitoring.models import Patient

    def issue(patient_id: int) -> tuple[str, str]:
        uploader, secret = issue_uploader(
            patient=Patient.objects.get(pk=patient_id), created_by=None
        )
        return uploader.slug, hashlib.sha1(secret.encode()).hexdigest()

    return [issue(pk) for pk in patients.ids], issue(patients.warmup_id)


def nightscout_requests(
    per_patient: list[list[dict]], uploaders: list[tuple[str, str]], size: int
) -> list[Request]:
    chunks = [
        [
            Request(f"{NIGHTSCOUT_PREFIX}{slug}/api/v1/entries", sha1,
                    json.dumps(entries[i : i + size]).encode(), len(entries[i : i + size]),
                    expect=200)
            for i in range(0, len(entries), size)
        ]
        for entries, (slug, sha1) in zip(per_patient, uploaders, strict=True)
    ]  # fmt: skip
    return [request for group in zip_longest_flat(chunks) for request in group]


def cgm_table_state(database_url: str, patient_ids: list[int]) -> tuple[int, str]:
    with pg_connect(database_url) as conn:
        count, digest = conn.execute(
            f"SELECT count(*), md5(string_agg(ROW({CGM_CONTENT_COLUMNS})::text, E'\\n' "
            f"ORDER BY patient_id, client_id)) FROM {TABLE} WHERE patient_id = ANY(%s)",
            [patient_ids],
        ).fetchone()
    return count, digest or ""


def run_cgm_phase(
    *, name: str, server: Server, requests: list[Request], warm: list[Request], expected_rows: int,
    digest: str, database_url: str, patients: Patients, connections: int, deadline: float,
    repeat: int,
) -> tuple[PhaseResult, str]:  # fmt: skip
    """As run_http_phase, for the CGM workload: Nightscout answers 200, and the rows are
    checked against the other CGM phase's (the COPY reference is the mixed workload's)."""
    outcome = drive(server.port, warm, connections, deadline=60)
    if outcome["problems"] or len(outcome["statuses"]) != 1:
        raise SystemExit(f"{name} warm-up failed: {outcome['statuses']} {outcome['problems'][:3]}")
    seconds, found = [], ""
    for _ in range(repeat):
        empty_table(database_url)
        outcome = drive(server.port, requests, connections, deadline)
        if outcome["timed_out"] or outcome["problems"] or outcome["requests"] != len(requests):
            raise BenchmarkFailure(
                f"{name}: responses {outcome['statuses']}; {outcome['problems'][:5]}\n"
                f"{server.log_tail()}"
            )
        count, found = cgm_table_state(database_url, patients.ids)
        if count != expected_rows:
            raise BenchmarkFailure(f"{name}: {count} rows in the table, expected {expected_rows}")
        if digest and found != digest:
            raise BenchmarkFailure(f"{name}: rows differ from the other CGM phase's")
        seconds.append(outcome["seconds"])
        print(
            f"  {name}: {expected_rows} rows in {outcome['seconds']:.2f} s "
            f"({expected_rows / outcome['seconds']:,.0f}/s), {len(requests)} requests all stored"
        )
    detail = f"{len(requests)} requests of {NIGHTSCOUT_ENTRIES}, {connections} connections"
    return PhaseResult(name, expected_rows, statistics.median(seconds), detail, seconds), found


def run_cgm_phases(*, server: Server, args, patients: Patients) -> dict[str, PhaseResult]:
    """batch288 (native items) and nightscout (sgv entries): the same readings, both ways."""
    from django.db import connections as django_connections

    uploaders, warm_uploader = issue_uploaders(patients)
    django_connections.close_all()
    cgm = make_cgm_workload(args.readings, args.patients)
    native = [native_cgm_items(entries) for entries in cgm]
    rows = sum(len(entries) for entries in cgm)
    warm_entries = [
        {"type": "sgv", "sgv": 100 + i, "date": int(BASE_TIME.timestamp() * 1000) - i * 60_000}
        for i in range(args.connections * 4)
    ]
    warm_native = [
        native_cgm_items([{**entry, "device": CGM_DEVICE, "dateString": _iso_ms(entry["date"])}])
        for entry in warm_entries
    ]
    common = dict(
        server=server, expected_rows=rows, database_url=args.database_url, patients=patients,
        connections=args.connections, deadline=args.deadline, repeat=args.repeat,
    )  # fmt: skip
    results: dict[str, PhaseResult] = {}
    results["batch288"], digest = run_cgm_phase(
        name="batch288",
        requests=batch_requests(native, patients.tokens, NIGHTSCOUT_ENTRIES),
        warm=[
            Request(BATCH_PATH, patients.warmup_token, json.dumps({"readings": items}).encode(), 1)
            for items in warm_native
        ],
        digest="",
        **common,
    )
    results["nightscout"], _ = run_cgm_phase(
        name="nightscout",
        requests=nightscout_requests(cgm, uploaders, NIGHTSCOUT_ENTRIES),
        warm=[
            Request(
                f"{NIGHTSCOUT_PREFIX}{warm_uploader[0]}/api/v1/entries",
                warm_uploader[1],
                json.dumps([entry]).encode(),
                1,
                expect=200,
            )
            for entry in warm_entries
        ],
        digest=digest,
        **common,
    )
    return results


# --- Main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, help="items to post (default 20000; quick 3000)")
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--connections", type=int, default=4, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=2, help="threads per gthread worker")
    parser.add_argument("--repeat", type=int, help="runs per batch/COPY phase (median); default 5")
    parser.add_argument("--deadline", type=float, default=300, help="seconds allowed per phase")
    parser.add_argument(
        "--phases",
        default="copy,batch500,batch100,textbook,fhir500,nightscout",
        help="comma-separated subset of copy,batch500,batch100,textbook,fhir500,nightscout "
        "(nightscout: the CGM workload through /nightscout/<slug>/api/v1/entries and as "
        "native batches of the same size, batch288)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL"))
    args = parser.parse_args(argv)
    args.readings = args.readings or (3000 if args.quick else 20000)
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.database_url = args.database_url or DEFAULT_DATABASE_URL
    args.broker_url = args.broker_url or DEFAULT_BROKER_URL
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - {
        "copy",
        "batch500",
        "batch100",
        "textbook",
        "fhir500",
        "nightscout",
    }
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    broker = urlsplit(args.broker_url)
    if broker.scheme != "redis" or broker.path.strip("/") in ("", "0"):
        # The run ends by flushing the broker's Redis database: never the default one.
        parser.error("--broker-url must be redis://host:port/N with a database N >= 1")
    if "copy" not in args.phases:
        args.phases.insert(0, "copy")  # the reference rows every other phase is checked against
    return args


def print_table(results: dict[str, PhaseResult], args, load: tuple) -> None:
    print()
    print(
        f"Ingestion benchmark — {args.readings} items/phase for {args.patients} patients, "
        f"seed {SEED}, {os.cpu_count()} CPUs, load average before/after "
        f"{load[0]:.2f}/{load[1]:.2f}"
    )
    rows = next(iter(results.values())).rows if results else 0
    print(
        f"readings = rows stored: {args.readings} items, {rows - args.readings} of them blood "
        "pressures whose pulse is stored as its own heart-rate row"
    )
    if "nightscout" in results:
        print(
            f"batch288 and nightscout: a CGM workload of {results['nightscout'].rows} sgv "
            "readings (one row each), posted as native items and as Nightscout entries"
        )
    print(f"{'phase':<10} {'readings':>9} {'seconds':>8} {'readings/s':>11}  detail")
    for name in ("batch500", "batch100", "fhir500", "textbook", "copy", "batch288", "nightscout"):
        if name in results:
            r = results[name]
            runs = ", ".join(f"{s:.2f}" for s in r.runs) if len(r.runs) > 1 else ""
            detail = r.detail + (f"; runs {runs} s, median shown" if runs else "")
            print(f"{name:<10} {r.rows:>9} {r.seconds:>8.2f} {r.rate:>11,.0f}  {detail}")
    print()

    def ratio(a: str, b: str) -> float | None:
        return results[a].rate / results[b].rate if a in results and b in results else None

    lines = [
        ("batch100 / textbook", ratio("batch100", "textbook"), "x", 30),
        ("batch500 / textbook", ratio("batch500", "textbook"), "x", 30),
        ("batch500 / COPY", ratio("batch500", "copy"), "%", 0.10),
        ("batch100 / COPY", ratio("batch100", "copy"), "%", 0.10),
        # Issue 12: each interface at least half the native batch path's rate, same batch size.
        ("fhir500 / batch500", ratio("fhir500", "batch500"), "%", 0.50),
        ("nightscout / batch288", ratio("nightscout", "batch288"), "%", 0.50),
    ]
    for label, value, kind, target in lines:
        if value is None:
            continue
        shown = f"{value:.1f}x" if kind == "x" else f"{value * 100:.1f}%"
        goal = f"{target}x" if kind == "x" else f"{target * 100:.0f}%"
        verdict = "meets" if value >= target else "BELOW"
        print(f"{label:<20} {shown:>8}   target >= {goal:<5} {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    load_before = os.getloadavg()[0]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        CELERY_BROKER_URL=args.broker_url,
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or "vigil-benchmark-only",
        VIGIL_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="0",
    )
    env.pop("REDIS_URL", None)  # the cache (login throttles) is not on this path
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

    import redis

    redis_client = redis.Redis.from_url(args.broker_url)
    redis_client.ping()

    print(f"setting up {args.database_url} ...")
    setup_database(args.database_url)
    django_setup()
    patients = create_patients(args.patients)
    per_patient = make_workload(args.readings, args.patients)
    rows = canonical_rows(per_patient, patients.ids)
    from django.db import connections as django_connections

    django_connections.close_all()  # nothing open across the client processes' fork

    logdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    results: dict[str, PhaseResult] = {}
    failed = None
    server = None
    try:
        result, digest = run_copy(args.database_url, rows, patients, args.repeat)
        results["copy"] = result
        print(f"  copy: {len(rows)} rows, runs {', '.join(f'{x:.3f}' for x in result.runs)} s")
        common = dict(
            expected_rows=len(rows),
            digest=digest,
            database_url=args.database_url,
            patients=patients,
            redis_client=redis_client,
            connections=args.connections,
            deadline=args.deadline,
        )
        server_options = dict(
            env=env,
            workers=args.workers,
            worker_class=args.worker_class,
            threads=args.threads,
            logdir=logdir,
        )
        if "fhir500" in args.phases:
            # The reference for the FHIR phase: the COPY rows' measurements (run_copy left
            # them in the table), in the columns a FHIR upload reproduces.
            fhir_rows, fhir_digest = table_state(
                args.database_url, patients.ids, FHIR_COMPARED_COLUMNS
            )
        batch_phases = [p for p in args.phases if p.startswith(("batch", "fhir"))]
        if batch_phases or "nightscout" in args.phases:
            server = start_gunicorn(settings_module="config.settings", **server_options)
            for name in batch_phases:
                if name == "fhir500":
                    requests = fhir_requests(per_patient, patients.ids, patients.tokens, 500)
                    fhir_common = common | {"expected_rows": fhir_rows, "digest": fhir_digest}
                    results[name] = run_http_phase(
                        name=name,
                        server=server,
                        requests=requests,
                        repeat=args.repeat,
                        columns=FHIR_COMPARED_COLUMNS,
                        **fhir_common,
                    )
                    continue
                size = int(name.removeprefix("batch"))
                requests = batch_requests(per_patient, patients.tokens, size)
                results[name] = run_http_phase(
                    name=name, server=server, requests=requests, repeat=args.repeat, **common
                )
            if "nightscout" in args.phases:
                results |= run_cgm_phases(server=server, args=args, patients=patients)
            server.stop()
            server = None
        if "textbook" in args.phases:
            server = start_gunicorn(settings_module="benchmarks.settings", **server_options)
            requests = textbook_requests(per_patient, patients.tokens)
            results["textbook"] = run_http_phase(
                name="textbook", server=server, requests=requests, repeat=1, **common
            )
    except BenchmarkFailure as error:
        failed = str(error)
    finally:
        if server is not None:
            server.stop()
        redis_client.flushdb()  # DB 10 is the benchmark's own; no worker will drain it
        shutil.rmtree(logdir, ignore_errors=True)

    print_table(results, args, (load_before, os.getloadavg()[0]))
    if failed:
        print(f"\nFAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
