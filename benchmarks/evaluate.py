"""Evaluation benchmark: reading-to-alert latency and evaluation throughput, real worker.

    .venv/bin/python benchmarks/evaluate.py [--quick]

One run, on PostgreSQL and Redis, in a database of its own (dropped and re-created; default
postgres://postgres@127.0.0.1:5432/vigil_bench_eval) with the product's schema (migrate), a
Redis database of its own as the Celery broker (default redis://127.0.0.1:6379/7, flushed at
the start and at the end). Patients are enrolled on all five protocols with the product's
`enrol_patient`, in one care team whose level-1 nurse has an email address (the worker sends
with Django's locmem email backend), and get app tokens from `issue_app_token`.

  latency     gunicorn (config.wsgi, `--web-workers` sync workers, 2 as `./scripts/run`
              starts it; docker-compose.yml's web has 3) and a real worker (`celery -A config
              worker -Q evaluation,notifications -c 2`, prefork) as subprocesses. A client
              process posts single readings (`{"readings": [item]}`, one item, as a CGM sends
              them) from many patients at a steady rate (default 100/s for 30 s), paced on a
              fixed schedule by a pool of threads, so a slow response does not hold back the
              next post. Each posting patient already has the CGM trace a wearer has in steady
              state (a glucose every 5 minutes for 48 h, `--history-hours`, stored before the
              run and marked evaluated). Mostly normal values; a few cross a threshold, each
              in a (patient, alert group) that has no alert yet, so each must create an alert
              row.
              Latency runs from the start of the POST to the commit that makes the result
              visible: triggers on the benchmark database (installed for this phase only)
              NOTIFY on `evaluated_at` being set and on an alert row being inserted, and a
              listener process timestamps each notification as it arrives (PostgreSQL
              delivers NOTIFY at commit). Printed: POST → reading evaluated (all readings) and
              POST → alert row (threshold-crossing readings), p50 / p99 / max; and, as a
              cross-check from the rows alone, evaluated_at − received_at. Also the CPU each
              component spent per posted reading (gunicorn, worker, their PostgreSQL backends,
              the load generator) and how busy the whole machine was meanwhile: on this
              2-core machine that budget, not the code path alone, sets the latency.
              One run of the phase starts gunicorn and the worker once, then makes `--runs`
              runs at `--rate` (default 5 × 30 s) and one run per rate of `--curve` (default
              50,100,200,300,400/s, 15 s each), every run reported: POST → evaluated and →
              alert p50/p99/max, CPU per posted reading by process group with the all-in
              total (web + worker + postgres), the evaluation messages the worker received,
              and the stalls (runs of posts slower than `--stall-ms`, by start time, with
              their HTTP share). Then the repeated runs side by side (how many met the p99
              POST → alert target, `--target-p99-ms`) and the curve with its knee: the
              highest rate up to which every rate kept pace (achieved ≥ 95 % of offered)
              with p99 POST → evaluated ≤ max(`--knee-factor` × the lowest rate's p99,
              `--knee-floor-ms`).
  batch       A backlog inserted with the product's `record_readings` (no worker running; the
              tasks it enqueues are purged), then one `evaluate_patient_readings_task` per
              patient is published to a ready worker (same command, product settings) and the
              clock runs until no reading of the backlog is unevaluated → readings/s.
  textbook    `benchmarks/evaluate_textbook.py`: a task per reading (load the reading, its
              rules, its history; run the same rule kinds; write alerts with the product's
              lifecycle). Same kind of worker, `-I benchmarks.evaluate_textbook`, with
              `CELERY_DB_REUSE_MAX=0` (settings read it from the environment; Celery's Django
              fixup then closes the connection around every task, as it does by default).
              Runs on the backlog of a subset of the batch patients, reset (alerts deleted,
              evaluated_at cleared), one task per reading published in measured order.
  textbook+reuse  the same task with the product's connection reuse (CELERY_DB_REUSE_MAX
              from settings): how much of the gap is reconnection and how much per-task work.
              Each throughput row notes the PostgreSQL connections opened meanwhile
              (pg_stat_database.sessions), which shows whether the worker reconnected per task.

Where evaluation time goes: `benchmarks/evaluate_profile.py` (cProfile, in-process).

Checks (a failure stops the run): every POST answered 201 `created`; every reading of each
phase evaluated; for every threshold-crossing reading, an alert of its group exists for its
patient; the textbook run's alerts for its patients equal the batch run's (patient, group,
severity). Everything stops by itself (each phase has a deadline) and every subprocess is
stopped on exit, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import queue
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/vigil_bench_eval"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/7"
PROTOCOLS = ["heart_failure", "hypertension", "diabetes", "anticoagulation", "copd"]
READINGS_PATH = "/api/v1/readings"
SEED = 20260301
QUEUES = ("evaluation", "notifications")
EVALUATED_CHANNEL = "evaluate_bench_evaluated"
ALERT_CHANNEL = "evaluate_bench_alert"


# --- The workload -------------------------------------------------------------------------

# Normal values: (weight in the mix, item fields without id/type/measured_at).
NORMAL = {
    "glucose": 70,
    "blood_pressure": 8,
    "heart_rate": 5,
    "spo2": 5,
    "weight": 5,
    "temperature": 3,
    "inr": 2,
    "dose": 2,
}
# Threshold crossings: alert group → (metric, fields). Each is critical for its group in the
# protocols (so no other group's critical inhibits it), far from any normal value.
CROSSINGS = {
    "glucose_low": ("glucose", {"value": 45, "unit": "mg/dL"}),
    "glucose_high": ("glucose", {"value": 420, "unit": "mg/dL"}),
    "bp_high": ("blood_pressure", {"systolic": 192, "diastolic": 124}),
    "spo2_low": ("spo2", {"value": 82}),
    "heart_rate_high": ("heart_rate", {"value": 142}),
    "temperature_high": ("temperature", {"value": 39.7, "unit": "Cel"}),
    "inr_high": ("inr", {"value": 6.1}),
}


def normal_fields(metric: str, rng: random.Random, patient_index: int) -> dict:
    if metric == "glucose":
        return {"value": rng.randint(85, 165), "unit": "mg/dL"}
    if metric == "blood_pressure":
        return {"systolic": rng.randint(110, 132), "diastolic": rng.randint(68, 82)}
    if metric == "heart_rate":
        return {"value": rng.randint(58, 92)}
    if metric == "spo2":
        return {"value": rng.randint(94, 99)}
    if metric == "weight":
        # Steady per patient: weight-change rules stay quiet.
        return {"value": 70 + patient_index % 30 + rng.choice((0.0, 0.1)), "unit": "kg"}
    if metric == "temperature":
        return {"value": round(rng.uniform(36.4, 37.2), 1), "unit": "Cel"}
    if metric == "inr":
        return {"value": round(rng.uniform(2.2, 2.8), 1)}
    return {"medication": "metformin-500mg", "status": "taken"}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_item(metric: str, fields: dict, measured_at: datetime) -> dict:
    item = {"id": str(uuid.uuid4()), "type": metric, "measured_at": stamp(measured_at), **fields}
    if metric == "dose":
        item["scheduled_for"] = stamp(measured_at)
    return item


@dataclass
class Planted:
    """A threshold-crossing reading and the alert group it must open."""

    patient_id: int
    group: str
    client_id: str


def pick_metric(rng: random.Random) -> str:
    return rng.choices(list(NORMAL), weights=list(NORMAL.values()))[0]


# --- Setup: database, broker, patients ------------------------------------------------------


def configure_environment(args) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["CELERY_BROKER_URL"] = args.broker_url
    os.environ.setdefault("DJANGO_SECRET_KEY", "vigil-benchmark-only-secret")
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    # The benchmark's own processes: no cache server, quiet logs.
    os.environ.pop("REDIS_URL", None)
    os.environ["VIGIL_LOG_LEVEL"] = "WARNING"


def recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name.startswith("vigil_bench_eval"):
        raise SystemExit(
            f"refusing to drop {name!r}: the database name must start vigil_bench_eval"
        )
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def check_broker_url(broker_url: str) -> None:
    parts = urlsplit(broker_url)
    if parts.scheme != "redis" or parts.path.strip("/") in ("", "0"):
        raise SystemExit("--broker-url must be redis://host:port/N with N ≠ 0 (it is flushed)")


def flush_broker(broker_url: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()


def broker_client(broker_url: str):
    import redis

    return redis.Redis.from_url(broker_url)


@dataclass
class Population:
    latency_ids: list[int]
    latency_tokens: list[str]
    backlog_ids: list[int]
    warmup_id: int
    warmup_token: str


def enrol(latency: int, backlog: int) -> Population:
    from django.contrib.auth import get_user_model

    from alerts.models import CareTeam, CareTeamMembership
    from monitoring.auth import issue_app_token
    from monitoring.enrolment import enrol_patient

    team = CareTeam.objects.create(name="Benchmark clinic")
    nurse = get_user_model().objects.create_user(
        username="bench-nurse", email="nurse@clinic.example", is_staff=True
    )
    CareTeamMembership.objects.create(team=team, user=nurse, role="nurse", escalation_level=1)
    ids, tokens = [], []
    for index in range(1 + latency + backlog):
        patient = enrol_patient(
            external_id=f"BENCH-{index:05d}",
            name=f"Benchmark patient {index}",
            timezone="Europe/Amsterdam",
            care_team=team,
            protocols=PROTOCOLS,
        )
        ids.append(patient.pk)
        tokens.append(issue_app_token(patient=patient)[1] if index <= latency else "")
    return Population(
        latency_ids=ids[1 : 1 + latency],
        latency_tokens=tokens[1 : 1 + latency],
        backlog_ids=ids[1 + latency :],
        warmup_id=ids[0],
        warmup_token=tokens[0],
    )


def seed_cgm_history(population: Population, hours: float) -> int:
    """Give each latency patient the CGM trace a wearer has in steady state: a glucose every
    5 minutes for `hours`, stored with record_readings and marked evaluated (setup)."""
    from django.utils import timezone

    from monitoring.ingest import record_readings
    from monitoring.models import Patient, Reading

    count = int(hours * 12)
    if not count:
        return 0
    start = timezone.now() - timedelta(hours=hours)
    patients = Patient.objects.in_bulk(population.latency_ids)
    for index, patient_id in enumerate(population.latency_ids):
        rng = random.Random(SEED * 7 + index)
        trace = [
            make_item(
                "glucose",
                {"value": rng.randint(85, 165), "unit": "mg/dL"},
                start + timedelta(minutes=5 * number),
            )
            for number in range(count)
        ]
        for first in range(0, count, 500):
            record_readings(patient=patients[patient_id], items=trace[first : first + 500])
    Reading.objects.filter(patient_id__in=population.latency_ids).update(
        evaluated_at=timezone.now()
    )
    return count * len(population.latency_ids)


def pg(database_url: str):
    import psycopg

    return psycopg.connect(database_url, autocommit=True)


# --- Subprocesses ---------------------------------------------------------------------------


class Subprocesses:
    """Every process this run starts, stopped on exit whatever happens."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.popen: list[subprocess.Popen] = []
        self.children: list[multiprocessing.Process] = []

    def start(self, name: str, command: list[str], env: dict) -> tuple[subprocess.Popen, Path]:
        log_path = self.logdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its children go with it
            )
        self.popen.append(process)
        return process, log_path

    def stop(self, process: subprocess.Popen, timeout: float = 20) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # Whatever is left of the group (a pool child, a hung parent).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for child in self.children:
            if child.is_alive():
                child.terminate()
                child.join(5)
        for process in reversed(self.popen):
            self.stop(process, timeout=10)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def in_process_environment(**extra: str) -> None:
    """The environment of an in-process benchmark (evaluate_profile.py, idle_cost.py,
    evaluation_waits.py) on the database and broker this script leaves behind: the product's
    settings, quiet logs, no cache server (BENCH_EVAL_DATABASE_URL / BENCH_EVAL_BROKER_URL
    override the defaults). Call before django.setup()."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=os.environ.get("BENCH_EVAL_DATABASE_URL", DEFAULT_DATABASE_URL),
        CELERY_BROKER_URL=os.environ.get("BENCH_EVAL_BROKER_URL", DEFAULT_BROKER_URL),
        VIGIL_LOG_LEVEL="WARNING",
        **extra,
    )
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-" + "x" * 50)
    os.environ.pop("REDIS_URL", None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(procs: Subprocesses, env: dict, workers: int) -> tuple[int, subprocess.Popen]:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--timeout", "60",
        "--log-level", "warning",
    ]  # fmt: skip
    process, log_path = procs.start("gunicorn", command, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited at start:\n{tail(log_path)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return port, process
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not become healthy:\n{tail(log_path)}")


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path


def start_worker(
    procs: Subprocesses, env: dict, name: str, *, include: str = "", concurrency: int = 2
) -> Worker:
    """The production worker command (docker-compose.yml), two prefork processes."""
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--queues", ",".join(QUEUES), "--concurrency", str(concurrency), "--pool", "prefork",
        "--hostname", f"bench-{name}@%h", "--loglevel", "INFO",
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    if include:
        command += ["--include", include]
    process, log_path = procs.start(f"worker-{name}", command, env)
    worker = Worker(process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker {name} exited at start:\n{tail(log_path)}")
        if " ready." in log_path.read_text(errors="replace"):
            return worker
        time.sleep(0.1)
    raise SystemExit(f"worker {name} did not become ready:\n{tail(log_path)}")


def cpu_by_group(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by every live process of each process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(groups, 0.0)
    label_of = {pgid: label for label, pgid in groups.items()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = label_of.get(int(fields[2]))  # pgrp
        if label is not None:
            used[label] += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return used


def cpu_of_pids(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class BackendCpu:
    """CPU seconds the benchmark database's client backends used while it ran, counting the
    backends that started meanwhile (a worker reconnects every CELERY_DB_REUSE_MAX tasks):
    sampled every 0.2 s from a thread; a backend that exits loses at most its last 0.2 s."""

    def __init__(self, database_url: str, exclude: set[int]) -> None:
        self.database_url = database_url
        self.exclude = exclude  # the benchmark's own polling connection
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, conn, *, initial: bool = False) -> None:
        for pid in set(database_backends(conn)) - self.exclude:
            used = cpu_of_pids([pid])
            self.first.setdefault(pid, used if initial else 0.0)
            self.last[pid] = max(self.last.get(pid, 0.0), used)

    def _run(self) -> None:
        with pg(self.database_url) as conn:
            self._sample(conn, initial=True)
            self.ready.set()
            while not self.done.wait(0.2):
                self._sample(conn)
            self._sample(conn)

    def start(self) -> None:
        self.ready = threading.Event()
        self.thread.start()
        self.ready.wait(30)

    def stop(self) -> float:
        self.done.set()
        self.thread.join(30)
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


def database_backends(conn) -> list[int]:
    """PostgreSQL backends serving the benchmark database (web, worker, listener)."""
    return [
        pid
        for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    ]


def wait_until(what: str, check, timeout: float, worker: Worker | None = None, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        if worker is not None and worker.process.poll() is not None:
            raise SystemExit(
                f"the worker exited while waiting for {what}:\n{tail(worker.log_path)}"
            )
        time.sleep(every)
    log = f"\nworker log:\n{tail(worker.log_path)}" if worker else ""
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}{log}")


def queues_settled(redis_client) -> bool:
    """Nothing queued and nothing delivered but unacknowledged (acks_late)."""
    return all(redis_client.llen(name) == 0 for name in QUEUES) and not redis_client.hlen("unacked")


def none_pending(conn, patient_ids: list[int]) -> bool:
    # Served by the partial index on unevaluated readings: cheap enough to poll.
    (pending,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM monitoring_reading "
        "WHERE evaluated_at IS NULL AND patient_id = ANY(%s))",
        [patient_ids],
    ).fetchone()
    return not pending


# --- Phase (a): latency ---------------------------------------------------------------------

TRIGGERS_SQL = f"""
CREATE OR REPLACE FUNCTION evaluate_bench_evaluated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{EVALUATED_CHANNEL}', NEW.client_id::text);
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION evaluate_bench_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{ALERT_CHANNEL}', NEW.id::text || ' ' || NEW.reading_ids::text);
  RETURN NULL;
END $$;
CREATE TRIGGER evaluate_bench_evaluated AFTER UPDATE OF evaluated_at ON monitoring_reading
  FOR EACH ROW WHEN (OLD.evaluated_at IS NULL AND NEW.evaluated_at IS NOT NULL)
  EXECUTE FUNCTION evaluate_bench_evaluated();
CREATE TRIGGER evaluate_bench_alert AFTER INSERT ON alerts_alert
  FOR EACH ROW EXECUTE FUNCTION evaluate_bench_alert();
"""
DROP_TRIGGERS_SQL = """
DROP TRIGGER IF EXISTS evaluate_bench_evaluated ON monitoring_reading;
DROP TRIGGER IF EXISTS evaluate_bench_alert ON alerts_alert;
"""


def _listen(database_url: str, ready, stop, pipe) -> None:
    """Child process: timestamp every NOTIFY of the benchmark channels as it arrives."""
    _child_signals()
    seen: list[tuple[str, str, float]] = []
    with pg(database_url) as conn:
        conn.execute(f"LISTEN {EVALUATED_CHANNEL}")
        conn.execute(f"LISTEN {ALERT_CHANNEL}")
        ready.set()
        while not stop.is_set():
            for notify in conn.notifies(timeout=0.2):
                seen.append((notify.channel, notify.payload, time.monotonic()))
    pipe.send(seen)
    pipe.close()


@dataclass
class Post:
    offset: float  # seconds after the start, on the schedule
    token: str
    body: bytes
    client_id: str


@dataclass
class Sent:
    client_id: str
    scheduled: float
    started: float
    finished: float
    status: int
    outcome: str


def _send(port: int, posts: list[Post], start_at: float, threads: int, limit: float, pipe):
    """Child process: post on schedule from a pool of threads; report what happened."""
    _child_signals()
    todo: queue.Queue = queue.Queue()
    sent: list[Sent] = []
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            job = todo.get()
            if job is None:
                break
            post, scheduled = job
            started = time.monotonic()
            status, outcome = 0, ""
            try:
                conn.request(
                    "POST",
                    READINGS_PATH,
                    post.body,
                    {"Authorization": f"Bearer {post.token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                if response.will_close:
                    conn.close()  # sync workers close after each response
                outcome = json.loads(payload)["results"][0]["status"] if status == 201 else ""
                if status != 201:
                    outcome = payload[:200].decode(errors="replace")
            except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
                conn.close()
                outcome = repr(error)
            with lock:
                sent.append(
                    Sent(post.client_id, scheduled, started, time.monotonic(), status, outcome)
                )

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for post in posts:
        scheduled = start_at + post.offset
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        todo.put((post, scheduled))
    for _ in pool:
        todo.put(None)
    deadline = time.monotonic() + limit
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send((list(sent), usage.ru_utime + usage.ru_stime))
    pipe.close()


def crossing_slots(population: Population, seed: int) -> list[tuple[int, str]]:
    """Every (patient index, alert group) with no alert yet, shuffled; the runs of one
    benchmark take from one list, so each crossing still opens a new alert."""
    slots = [(index, group) for index in range(len(population.latency_ids)) for group in CROSSINGS]
    random.Random(seed).shuffle(slots)
    return slots


def latency_plan(
    population: Population,
    rate: float,
    duration: float,
    crossing_share: float,
    seed: int,
    free_slots: list[tuple[int, str]] | None = None,
) -> tuple[list[Post], list[Planted], dict[str, int]]:
    rng = random.Random(seed)
    total = int(rate * duration)
    base = datetime.now(UTC)  # measured_at ≤ the moment each post is sent
    posts, planted = [], []
    if free_slots is None:
        free_slots = crossing_slots(population, seed)
    patient_of: dict[str, int] = {}
    for number in range(total):
        offset = number / rate
        if free_slots and rng.random() < crossing_share:
            index, group = free_slots.pop()
            metric, fields = CROSSINGS[group]
        else:
            index = rng.randrange(len(population.latency_ids))
            group = None
            metric = pick_metric(rng)
            fields = normal_fields(metric, rng, index)
        item = make_item(metric, fields, base + timedelta(seconds=offset))
        patient_id = population.latency_ids[index]
        posts.append(
            Post(
                offset,
                population.latency_tokens[index],
                json.dumps({"readings": [item]}).encode(),
                item["id"],
            )
        )
        patient_of[item["id"]] = patient_id
        if group:
            planted.append(Planted(patient_id, group, item["id"]))
    return posts, planted, patient_of


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p99 of 3,000 samples is the 2,970th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class Row:
    phase: str
    readings: int
    seconds: float
    rate: float | None = None
    p50: float | None = None
    p99: float | None = None
    worst: float | None = None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def warm_up(port: int, population: Population, conn) -> None:
    """A few posts for a patient outside the measured population, evaluated end to end:
    gunicorn workers, the worker's pool processes and their connections are warm."""
    now = datetime.now(UTC) - timedelta(seconds=30)
    for number in range(12):
        item = make_item(
            "glucose", {"value": 110, "unit": "mg/dL"}, now + timedelta(seconds=number)
        )
        http_post(port, population.warmup_token, {"readings": [item]})
    wait_until("warm-up evaluation", lambda: none_pending(conn, [population.warmup_id]), timeout=60)


def http_post(port: int, token: str, body: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        READINGS_PATH,
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.status != 201:
        raise SystemExit(f"warm-up post failed: {response.status} {payload[:300]!r}")


@dataclass
class RunResult:
    label: str
    rate: float
    offered: float
    p50: float
    p99: float
    worst: float
    alert_p99: float | None
    cpu: dict[str, float]  # ms per posted reading, by process group
    drained_after: float  # s from the last response until every reading was evaluated
    messages: int  # evaluation messages the worker received


def run_latency(args, procs: Subprocesses, env: dict, population: Population, results: Results):
    """Gunicorn and the worker once; then `--runs` runs at `--rate`, then one run per rate of
    `--curve` (each `--curve-duration` s). Every run is reported."""
    port, web = start_gunicorn(procs, env, workers=args.web_workers)
    worker = start_worker(procs, env, "latency")
    redis_client = broker_client(args.broker_url)
    slots = crossing_slots(population, SEED)
    plan = [(f"run {n}/{args.runs}", args.rate, args.duration) for n in range(1, args.runs + 1)]
    plan += [(f"curve {rate:g}/s", rate, args.curve_duration) for rate in args.curve]
    runs: list[RunResult] = []
    with pg(args.database_url) as conn:
        warm_up(port, population, conn)
        wait_until("the warm-up's notifications", lambda: queues_settled(redis_client), 60, worker)
        conn.execute(TRIGGERS_SQL)
        try:
            for number, (label, rate, duration) in enumerate(plan):
                print(f"    {label}: {rate:g} posts/s for {duration:g} s …", flush=True)
                run = latency_run(
                    args, procs, conn, port, {"web": web.pid, "worker": worker.process.pid},
                    worker, redis_client, population, slots, label, rate, duration,
                    SEED + 1000 * number, results,
                )  # fmt: skip
                runs.append(run)
                print(
                    f"      POST → evaluated p50 {run.p50:.1f} ms, p99 {run.p99:.1f} ms, max "
                    f"{run.worst:.1f} ms; CPU {sum(run.cpu[g] for g in CPU_GROUPS):.2f} ms/reading",
                    flush=True,
                )
        finally:
            conn.execute(DROP_TRIGGERS_SQL)
    procs.stop(worker.process)
    redis_client.close()
    summarise_runs(args, runs, results)
    return port


CPU_GROUPS = ("web", "worker", "postgres")


def latency_run(
    args, procs, conn, port, groups, worker, redis_client, population, slots, label, rate,
    duration, seed, results,
) -> RunResult:  # fmt: skip
    from django.db import connections

    ctx = multiprocessing.get_context("fork")
    posts, planted, patient_of = latency_plan(
        population, rate, duration, args.crossing_share, seed, slots
    )
    connections.close_all()  # nothing Django-owned crosses the fork
    ready, stop = ctx.Event(), ctx.Event()
    listen_in, listen_out = ctx.Pipe(duplex=False)
    listener = ctx.Process(
        target=_listen, args=(args.database_url, ready, stop, listen_out), daemon=True
    )
    procs.children.append(listener)
    listener.start()
    if not ready.wait(30):
        raise SystemExit("the NOTIFY listener did not start")
    send_in, send_out = ctx.Pipe(duplex=False)
    start_at = time.monotonic() + 0.5
    # Bounded: the schedule, then as long again plus a minute for a backed-up server.
    limit = 2 * duration + 60
    sender = ctx.Process(
        target=_send,
        args=(port, posts, start_at, args.client_threads, duration + 60, send_out),
        daemon=True,
    )
    procs.children.append(sender)
    backends = BackendCpu(args.database_url, exclude={conn.info.backend_pid})
    messages_before = worker_messages(worker)
    cpu_before = cpu_by_group(groups) | {"postgres": 0.0}
    machine_before = machine_busy()
    backends.start()
    sender.start()
    if not send_in.poll(limit + 30):
        raise SystemExit("the load generator did not finish in time")
    sent, client_cpu = send_in.recv()
    sender.join(10)
    sending_ended = time.monotonic()
    wait_until(
        "every posted reading to be evaluated",
        lambda: none_pending(conn, population.latency_ids),
        timeout=120,
        worker=worker,
    )
    drained = time.monotonic()
    wait_until("the notification tasks", lambda: queues_settled(redis_client), 120, worker)
    cpu_after = cpu_by_group(groups) | {"postgres": backends.stop()}
    machine_after = machine_busy()
    messages = worker_messages(worker) - messages_before
    time.sleep(0.5)  # notifications in flight reach the listener
    stop.set()
    if not listen_in.poll(30):
        raise SystemExit("the NOTIFY listener did not report")
    seen = listen_in.recv()
    listener.join(10)
    summary = report_latency(
        args, conn, posts, sent, seen, planted, patient_of, results, label, rate
    )
    results.notes.append(
        f"{label}: all posted readings evaluated {drained - sending_ended:.2f} s after the "
        f"last response; the worker received {messages} evaluation messages for "
        f"{len(posts)} posts"
    )
    cpu_before["client"], cpu_after["client"] = 0.0, client_cpu  # its own getrusage
    per_reading = {
        label: (cpu_after[label] - cpu_before[label]) * 1000 / len(posts) for label in cpu_after
    }
    busy = machine_after[0] - machine_before[0]
    available = machine_after[1] - machine_before[1]  # CPU seconds of all cores
    wall = available / (os.cpu_count() or 1)
    ours = sum(cpu_after.values()) - sum(cpu_before.values())
    results.notes.append(
        f"{label}: CPU per posted reading: "
        + ", ".join(f"{group} {ms:.2f} ms" for group, ms in per_reading.items())
        + f"; all-in (web + worker + postgres) "
        f"{sum(per_reading[group] for group in CPU_GROUPS):.2f} ms"
        f"; the machine was {100 * busy / available:.0f} % busy over "
        f"those {wall:.1f} s, {100 * ours / max(busy, 1e-9):.0f} % of it these processes"
    )
    return RunResult(
        label=label,
        rate=rate,
        offered=summary["offered"],
        p50=summary["p50"],
        p99=summary["p99"],
        worst=summary["max"],
        alert_p99=summary["alert_p99"],
        cpu=per_reading,
        drained_after=drained - sending_ended,
        messages=messages,
    )


EVALUATION_TASKS = (
    "monitoring.tasks.drain_pending_readings_task",
    "monitoring.tasks.evaluate_patient_readings_task",
)


def worker_messages(worker: Worker) -> int:
    """Evaluation messages the worker has received so far (its INFO log, one line each)."""
    text = worker.log_path.read_text(errors="replace")
    return sum(
        len(re.findall(rf"Task {re.escape(name)}\[[-0-9a-f]+\] received", text))
        for name in EVALUATION_TASKS
    )


def summarise_runs(args, runs: list[RunResult], results: Results) -> None:
    """The runs at `--rate` side by side, and the latency curve with its knee."""
    repeated = [run for run in runs if run.label.startswith("run ")]
    curve = sorted((run for run in runs if run.label.startswith("curve ")), key=lambda r: r.rate)
    if repeated:
        results.notes.append(
            f"{len(repeated)} runs at {args.rate:g}/s, POST → evaluated p50 / p99 ms: "
            + ", ".join(f"{run.p50:.0f} / {run.p99:.0f}" for run in repeated)
            + "; POST → alert p99 ms: "
            + ", ".join(fmt(run.alert_p99, ".0f") or "–" for run in repeated)
            + f"; runs with p99 POST → alert < {args.target_p99_ms:g} ms: "
            f"{sum(under_target(run, args.target_p99_ms) for run in repeated)} of {len(repeated)}"
        )
        results.notes.append(
            "CPU per live reading, all-in (web + worker + postgres), ms: "
            + ", ".join(f"{sum(run.cpu[g] for g in CPU_GROUPS):.2f}" for run in repeated)
            + " (by group, median of the runs: "
            + ", ".join(
                f"{group} {statistics.median(run.cpu[group] for run in repeated):.2f}"
                for group in CPU_GROUPS
            )
            + ")"
        )
    if curve:
        knee = knee_of(curve, args.knee_factor, args.knee_floor_ms)
        results.notes.append(
            "latency curve, rate → achieved/s, POST → evaluated p50 / p99 ms: "
            + "; ".join(
                f"{run.rate:g} → {run.offered:.0f}/s, {run.p50:.0f} / {run.p99:.0f}"
                for run in curve
            )
        )
        results.notes.append(
            f"knee: {f'{knee:g} readings/s' if knee else 'below the lowest rate'} (the highest "
            "rate up "
            f"to which every rate kept pace, within 5 %, with p99 POST → evaluated ≤ "
            f"max({args.knee_factor:g} × the lowest rate's p99, {args.knee_floor_ms:g} ms))"
        )


def under_target(run: RunResult, target_ms: float) -> bool:
    return run.alert_p99 is not None and run.alert_p99 < target_ms


def knee_of(curve: list[RunResult], factor: float, floor_ms: float) -> float | None:
    bound = max(factor * curve[0].p99, floor_ms)
    knee = None
    for run in curve:
        if run.p99 > bound or run.offered < 0.95 * run.rate:
            break
        knee = run.rate
    return knee


def report_latency(
    args, conn, posts, sent, seen, planted, patient_of, results: Results, run: str, rate: float
) -> dict:
    problems = [s for s in sent if s.status != 201 or s.outcome != "created"]
    if len(sent) != len(posts) or problems:
        sample = "; ".join(f"{s.status} {s.outcome}" for s in problems[:3])
        raise SystemExit(
            f"{len(sent)} of {len(posts)} posts answered; {len(problems)} failed: {sample}"
        )
    evaluated_at = {}
    alert_at: dict[int, float] = {}
    for channel, payload, at in seen:
        if channel == EVALUATED_CHANNEL:
            evaluated_at.setdefault(payload, at)
        else:
            _alert_id, reading_ids = payload.split(" ", 1)
            for reading_id in json.loads(reading_ids):
                alert_at.setdefault(reading_id, at)
    # Reading ids of what was posted, and the server-side view of the same readings.
    rows = conn.execute(
        "SELECT client_id::text, id, "
        "EXTRACT(EPOCH FROM evaluated_at - received_at) * 1000, evaluated_at IS NOT NULL "
        "FROM monitoring_reading WHERE client_id = ANY(%s::uuid[])",
        [[s.client_id for s in sent]],
    ).fetchall()
    reading_id = {client_id: pk for client_id, pk, _, _ in rows}
    server_ms = [ms for _, _, ms, done in rows if done]
    unevaluated = [client_id for client_id, _, _, done in rows if not done]
    if len(rows) != len(sent) or unevaluated:
        raise SystemExit(f"{len(sent)} posted, {len(rows)} stored, {len(unevaluated)} unevaluated")
    by_client = {s.client_id: s for s in sent}
    missing = [c for c in by_client if c not in evaluated_at]
    if missing:
        raise SystemExit(f"{len(missing)} evaluations were not observed by the listener")
    to_evaluated = [(evaluated_at[c] - s.started) * 1000 for c, s in by_client.items()]
    check_planted_alerts(conn, planted)
    to_alert = []
    for plant in planted:
        at = alert_at.get(reading_id[plant.client_id])
        if at is None:
            raise SystemExit(f"no alert insert observed for planted reading {plant.client_id}")
        to_alert.append((at - by_client[plant.client_id].started) * 1000)
    lag = [(s.started - s.scheduled) * 1000 for s in sent]
    from_schedule = [(evaluated_at[c] - s.scheduled) * 1000 for c, s in by_client.items()]
    http_ms = [(s.finished - s.started) * 1000 for s in sent]
    span = max(s.started for s in sent) - min(s.started for s in sent)
    offered = (len(sent) - 1) / span if span else float("nan")
    # The readings/s column is the rate the posts really started at.
    label = f"(a) {run}, {rate:g}/s"
    results.rows += [
        Row(f"{label}: POST → evaluated", len(to_evaluated), span, offered,
            *stats(to_evaluated)),
        Row(f"{label}: POST → alert row", len(to_alert), span, None, *stats(to_alert)),
        Row("    of which the HTTP response", len(http_ms), span, None, *stats(http_ms)),
        Row("    server rows: evaluated_at − received_at", len(server_ms), span, None,
            *stats(server_ms)),
    ]  # fmt: skip
    results.notes.append(
        f"{run}: {len(sent)} posts over {len(set(patient_of.values()))} patients, "
        f"{len(planted)} threshold crossings (each opened its alert); post start behind "
        f"schedule p99 {percentile(lag, 0.99):.1f} ms, max {max(lag):.1f} ms (counted from the "
        f"scheduled start instead, POST → evaluated p50 {statistics.median(from_schedule):.0f} "
        f"ms, p99 {percentile(from_schedule, 0.99):.0f} ms)"
    )
    stall_note = stalls(by_client, evaluated_at, args.stall_ms)
    if stall_note:
        results.notes.append(f"{run}: {stall_note}")
    return {
        "offered": offered,
        "p50": statistics.median(to_evaluated),
        "p99": percentile(to_evaluated, 0.99),
        "max": max(to_evaluated),
        "alert_p99": percentile(to_alert, 0.99) if to_alert else None,
    }


def stalls(by_client: dict, evaluated_at: dict, threshold_ms: float) -> str:
    """Where the slow readings were: runs of posts (by start time) whose POST → evaluated
    exceeded `threshold_ms`, merged when less than a second apart, each with where its time
    went (the HTTP response, or after it: queue and evaluation)."""
    slow = sorted(
        (s.started, (evaluated_at[c] - s.started) * 1000, (s.finished - s.started) * 1000)
        for c, s in by_client.items()
        if (evaluated_at[c] - s.started) * 1000 > threshold_ms
    )
    if not slow:
        return ""
    origin = min(s.started for s in by_client.values())
    spans: list[list] = []
    for started, total, response in slow:
        if spans and started - spans[-1][1] < 1.0:
            span = spans[-1]
            span[1], span[2] = started, span[2] + 1
            span[3], span[4] = max(span[3], total), max(span[4], response)
        else:
            spans.append([started, started, 1, total, response])
    shown = "; ".join(
        f"{first - origin:.1f}–{last - origin:.1f} s: {count} posts, worst {total:.0f} ms "
        f"(HTTP {response:.0f} ms)"
        for first, last, count, total, response in spans[:8]
    )
    more = f" (+{len(spans) - 8} more)" if len(spans) > 8 else ""
    return f"stalls over {threshold_ms:g} ms, by post start: {shown}{more}"


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), percentile(values, 0.99), max(values)


def check_planted_alerts(conn, planted: list[Planted]) -> None:
    """Every threshold-crossing reading has an unresolved alert of its group."""
    if not planted:
        return
    found = set(
        conn.execute(
            "SELECT patient_id, dedupe_key FROM alerts_alert "
            "WHERE status <> 'resolved' AND patient_id = ANY(%s)",
            [sorted({p.patient_id for p in planted})],
        ).fetchall()
    )
    lost = [p for p in planted if (p.patient_id, p.group) not in found]
    if lost:
        raise SystemExit(f"{len(lost)} threshold crossings raised no alert, e.g. {lost[0]}")


# --- Phases (b) and (c): throughput ---------------------------------------------------------


def backlog_items(
    patient_index: int, count: int, crossings: int, now: datetime
) -> tuple[list[dict], list[str]]:
    """One patient's readings over the last 20 hours (fresh: threshold rules apply), with
    `crossings` threshold crossings in distinct alert groups. Returns items and those groups."""
    rng = random.Random(SEED + patient_index)
    start = now - timedelta(hours=20)
    step = timedelta(hours=20) / count
    groups = rng.sample(sorted(CROSSINGS), crossings)
    positions = dict(zip(rng.sample(range(count), crossings), groups, strict=True))
    items = []
    for number in range(count):
        moment = start + step * number
        if number in positions:
            metric, fields = CROSSINGS[positions[number]]
        else:
            metric = pick_metric(rng)
            fields = normal_fields(metric, rng, patient_index)
        items.append(make_item(metric, fields, moment))
    return items, groups


def insert_backlog(args, population: Population) -> list[Planted]:
    from django.utils import timezone

    from monitoring.ingest import record_readings
    from monitoring.models import Patient

    now = timezone.now()
    planted = []
    patients = Patient.objects.in_bulk(population.backlog_ids)
    for index, patient_id in enumerate(population.backlog_ids):
        items, groups = backlog_items(index, args.per_patient, args.backlog_crossings, now)
        for start in range(0, len(items), 500):
            result = record_readings(patient=patients[patient_id], items=items[start : start + 500])
            if result.created != len(items[start : start + 500]):
                raise SystemExit(f"backlog insert: {result.as_dict()['results'][:3]}")
        planted += [Planted(patient_id, group, "") for group in groups]
    return planted


def run_throughput(
    args,
    procs: Subprocesses,
    env: dict,
    name: str,
    patient_ids: list[int],
    publish,
    *,
    include: str = "",
) -> tuple[int, float, int]:
    """Start a worker, wait until ready, publish, time until every reading is evaluated.
    Returns the readings, the seconds, and the database connections opened meanwhile."""
    redis_client = broker_client(args.broker_url)
    with pg(args.database_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM monitoring_reading "
            "WHERE evaluated_at IS NULL AND patient_id = ANY(%s)",
            [patient_ids],
        ).fetchone()
        conn.execute("CHECKPOINT")
        worker = start_worker(procs, env, name, include=include)
        sessions_before = database_sessions(conn)
        started = time.monotonic()
        publish()
        finished = wait_until(
            f"{name}: every reading evaluated",
            lambda: none_pending(conn, patient_ids),
            timeout=args.phase_limit,
            worker=worker,
            every=0.02,
        )
        wait_until(
            f"{name}: the queues to drain", lambda: queues_settled(redis_client), 120, worker
        )
        procs.stop(worker.process)
        # A backend counts its session when it reports stats; the worker's have exited now.
        time.sleep(1.5)
        sessions = database_sessions(conn) - sessions_before
    redis_client.close()
    return count, finished - started, sessions


def database_sessions(conn) -> int:
    """Connections ever opened to this database (pg_stat_database.sessions, PostgreSQL 14+)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    (sessions,) = conn.execute(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return sessions


def alert_state(patient_ids: list[int]) -> set[tuple[int, str, str]]:
    from alerts.models import Alert

    return set(
        Alert.objects.filter(patient_id__in=patient_ids).values_list(
            "patient_id", "dedupe_key", "severity"
        )
    )


def reset_evaluation(patient_ids: list[int]) -> None:
    from alerts.models import Alert
    from monitoring.models import Reading

    Alert.objects.filter(patient_id__in=patient_ids).delete()  # events, notifications with them
    Reading.objects.filter(patient_id__in=patient_ids).update(evaluated_at=None)


def run_batch_and_textbook(args, procs, env, population: Population, results: Results) -> None:
    from django.db import connection

    from config.celery import app
    from monitoring.models import Reading
    from monitoring.tasks import evaluate_patient_readings_task

    began = time.monotonic()
    planted = insert_backlog(args, population)
    flush_broker(args.broker_url)  # record_readings enqueued evaluations; no worker ran
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_reading")
    results.notes.append(
        f"backlog: {len(population.backlog_ids) * args.per_patient} readings for "
        f"{len(population.backlog_ids)} patients inserted with record_readings in "
        f"{time.monotonic() - began:.1f} s (not timed)"
    )

    def publish_batch() -> None:
        for patient_id in population.backlog_ids:
            evaluate_patient_readings_task.delay(patient_id)

    count, seconds, sessions = run_throughput(
        args, procs, env, "batch", population.backlog_ids, publish_batch
    )
    with pg(args.database_url) as conn:
        check_planted_alerts(conn, planted)
    results.rows.append(
        Row(
            f"(b) batch: a task per patient ({args.per_patient} readings)",
            count,
            seconds,
            count / seconds,
            note=f"{sessions} DB connections opened",
        )
    )
    batch_rate = count / seconds

    subset = population.backlog_ids[: args.textbook_patients]
    expected = alert_state(subset)
    textbook_rates = {}
    for label, reuse in (("textbook", "0"), ("textbook-reuse", None)):
        reset_evaluation(subset)
        reading_ids = list(
            Reading.objects.filter(patient_id__in=subset)
            .order_by("measured_at", "id")
            .values_list("id", flat=True)
        )
        worker_env = dict(env)
        if reuse is not None:
            worker_env["CELERY_DB_REUSE_MAX"] = reuse

        def publish_textbook(reading_ids=reading_ids) -> None:
            with app.producer_or_acquire() as producer:
                for reading_id in reading_ids:
                    app.send_task(
                        "benchmarks.evaluate_textbook.evaluate_reading_task",
                        args=[reading_id],
                        queue="evaluation",
                        producer=producer,
                    )

        count, seconds, sessions = run_throughput(
            args,
            procs,
            worker_env,
            label,
            subset,
            publish_textbook,
            include="benchmarks.evaluate_textbook",
        )
        got = alert_state(subset)
        if got != expected:
            raise SystemExit(
                f"{label}: alerts differ from the batch run's: missing {sorted(expected - got)[:5]}"
                f", extra {sorted(got - expected)[:5]}"
            )
        textbook_rates[label] = count / seconds
        title = (
            "(c) textbook: a task per reading, CELERY_DB_REUSE_MAX=0"
            if reuse is not None
            else "(c') textbook: a task per reading, connection reused"
        )
        results.rows.append(
            Row(title, count, seconds, count / seconds, note=f"{sessions} DB connections opened")
        )
    results.notes.append(
        f"textbook runs: {len(subset)} of the batch patients, reset; their alerts "
        f"({len(expected)}) equal the batch run's (patient, group, severity)"
    )
    results.notes.append(
        f"ratio (b)/(c) = {batch_rate / textbook_rates['textbook']:.1f}×   "
        f"(b)/(c') = {batch_rate / textbook_rates['textbook-reuse']:.1f}×"
    )


# --- Output ---------------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def print_table(results: Results) -> None:
    header = (
        f"{'phase':<58} {'readings':>8} {'seconds':>8} {'readings/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  note"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in results.rows:
        print(
            f"{row.phase:<58} {row.readings:>8} {row.seconds:>8.2f} {fmt(row.rate, '.0f'):>10} "
            f"{fmt(row.p50, '.1f'):>8} {fmt(row.p99, '.1f'):>8} {fmt(row.worst, '.1f'):>8}  "
            f"{row.note}".rstrip()
        )
    print()
    for note in results.notes:
        print(f"- {note}")


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1–2 min)")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_EVAL_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("BENCH_EVAL_BROKER_URL", DEFAULT_BROKER_URL)
    )
    parser.add_argument("--rate", type=float, default=100.0, help="posts per second")
    parser.add_argument("--duration", type=float, help="seconds of steady load per run (30)")
    parser.add_argument("--runs", type=int, help="latency runs at --rate (5)")
    parser.add_argument(
        "--curve",
        help="rates of the latency curve, comma-separated (50,100,200,300,400; 'none' for none)",
    )
    parser.add_argument("--curve-duration", type=float, help="seconds per curve rate (15)")
    parser.add_argument("--target-p99-ms", type=float, default=50.0)
    parser.add_argument(
        "--stall-ms", type=float, default=250.0, help="report posts slower than this, by time"
    )
    parser.add_argument("--knee-factor", type=float, default=3.0)
    parser.add_argument("--knee-floor-ms", type=float, default=50.0)
    parser.add_argument("--patients", type=int, help="patients posting (500)")
    parser.add_argument("--crossing-share", type=float, default=0.03)
    parser.add_argument(
        "--history-hours", type=float, default=48.0, help="CGM trace each posting patient has"
    )
    parser.add_argument("--client-threads", type=int, default=16)
    parser.add_argument(
        "--web-workers", type=int, default=2, help="gunicorn sync workers (scripts/run: 2)"
    )
    parser.add_argument("--backlog-patients", type=int, help="batch phase patients (200)")
    parser.add_argument("--per-patient", type=int, default=100, help="backlog per patient")
    parser.add_argument("--backlog-crossings", type=int, default=2)
    parser.add_argument("--textbook-patients", type=int, help="textbook phase patients (30)")
    parser.add_argument("--phase-limit", type=float, default=300.0, help="seconds per phase")
    parser.add_argument(
        "--phases",
        default="latency,throughput",
        help="comma-separated: latency, throughput (both by default)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (8.0 if quick else 30.0)
    args.runs = args.runs if args.runs is not None else (1 if quick else 5)
    curve = args.curve or ("100,200" if quick else "50,100,200,300,400")
    args.curve = [] if curve == "none" else [float(rate) for rate in curve.split(",") if rate]
    args.curve_duration = args.curve_duration or (5.0 if quick else 15.0)
    args.patients = args.patients or (100 if quick else 500)
    args.backlog_patients = args.backlog_patients or (30 if quick else 200)
    args.textbook_patients = args.textbook_patients or (6 if quick else 30)
    args.textbook_patients = min(args.textbook_patients, args.backlog_patients)
    args.phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    unknown = args.phases - {"latency", "throughput"}
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _child_signals() -> None:
    """In a forked helper: the parent stops it; Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_broker_url(args.broker_url)
    configure_environment(args)
    # SIGTERM unwinds like Ctrl-C, so the finally below stops every subprocess.
    signal.signal(signal.SIGTERM, _interrupt)

    import django

    print(f"load average at start: {load_average()} ({os.cpu_count()} cores)", flush=True)
    recreate_database(args.database_url)
    flush_broker(args.broker_url)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    began = time.monotonic()
    population = enrol(args.patients, args.backlog_patients)
    print(
        f"enrolled {1 + args.patients + args.backlog_patients} patients on "
        f"{', '.join(PROTOCOLS)} in {time.monotonic() - began:.1f} s",
        flush=True,
    )
    began = time.monotonic()
    seeded = seed_cgm_history(population, args.history_hours)
    flush_broker(args.broker_url)  # record_readings enqueued evaluations; no worker ran
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_reading")
    print(
        f"stored {seeded} CGM readings ({args.history_hours:g} h per latency patient) in "
        f"{time.monotonic() - began:.1f} s",
        flush=True,
    )
    env = dict(os.environ)
    results = Results()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-eval-") as logdir:
        procs = Subprocesses(Path(logdir))
        try:
            if "latency" in args.phases:
                print("(a) latency …", flush=True)
                run_latency(args, procs, env, population, results)
                procs.stop_all()
            if "throughput" in args.phases:
                print("(b)/(c) throughput …", flush=True)
                run_batch_and_textbook(args, procs, env, population, results)
        finally:
            procs.stop_all()
            flush_broker(args.broker_url)
    print_table(results)
    print(f"- load average at end: {load_average()}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; subprocesses stopped", file=sys.stderr)
        sys.exit(130)
