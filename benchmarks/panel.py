"""Panel and ledger benchmark (issue 13, item 7): the care team's panel and the monthly
ledger against a year of a program's records.

    .venv/bin/python benchmarks/panel.py                         # 1,000 patients, a year
    .venv/bin/python benchmarks/panel.py --reuse                 # measure the last database
    .venv/bin/python benchmarks/panel.py --rounds 0              # generate only
    .venv/bin/python benchmarks/panel.py --patients 50 --days 30 \\
        --database-url postgres://postgres@127.0.0.1:5432/vigil_bench_panel_small   # a check

One database (dropped and re-created unless --reuse finds it; its name must start
`vigil_bench_panel`), migrated, then:

  teams      two care teams: "small" with a tenth of the patients (100 of 1,000: the patients
             whose index modulo 100 is below 10) and "large" with the rest. Each has a
             physician (the episodes' billing practitioner and the approver), a coordinator
             and two nurses. The measured users are two staff nurses: `panel-nurse-small`, a
             member of the small team only (sees 100 patients), and `panel-nurse`, a member of
             both (sees all 1,000). Same role, same code path, only the panel's size differs.
  patients   enrolled with the product's `enrol_patient` (their protocols' rules and
             schedules). Every tenth wears a CGM (a glucose every 5 minutes, enrolled on
             diabetes); the others follow one of the five protocols' routines (twice-daily
             blood pressure with pulse, a daily weight, fingerstick glucose, a weekly INR and a
             daily dose, SpO2 and temperature), `--manual-share` (5 %) of their device
             measurements typed in by hand instead. The generator is scale.py's (same rows).
  readings   `--days` (365) of them up to ten minutes ago, by COPY (scale.generate_history:
             monthly partitions, the idempotency keys filled from the readings).
  device     monitoring_deviceday, as the ingest statement writes it: the local day, in the
  days       patient's zone, of every device-entered reading that is not a dose (one INSERT …
             SELECT DISTINCT, the statement of migration 0018's backfill; checked against
             Python's zoneinfo for a few patients).
  episodes   one open RPM episode per patient, its start spread over the history, consent
             (2 % without: the ledger's "no consent"), the team's physician billing,
             ICD-10 conditions by protocol.
  time       `--time-entries` (50,000) within the episodes, by COPY: working hours, 2–45
             minutes, 60 % timer / 40 % by hand, phone and video calls interactive (~25 %),
             approved by the physician a day or three later except the last days' (and a few
             capped timers, left for approval).
  reviews    sign-offs for most patients (about every two weeks), notes and calls (COPY).
  alerts     a few open alerts (`--alert-share`, 5 %): threshold crossings posted through the
             product's record_readings and evaluated in-process.
  VACUUM ANALYZE, so plans are a live system's.

Measured, in this process (Django's test Client, CONN_MAX_AGE from the settings, after one
untimed warm-up each; --rounds requests per path; server time = the request through the
whole stack, middleware to response; queries by CaptureQueriesContext):

  admin panel page     the admin page, as each measured nurse with a session
  GET /api/v1/panel    as each measured nurse with a staff token (Authorization: Bearer)
  panel_page()         program.panel.panel_page(user=…), the function under both, in-process
  ledger               program.ledger's month for every patient (wall time, --ledger-rounds
                       runs; default: the last full calendar month): the stored recomputation
                       (recompute_ledger) from an empty ledger, no warm-up, and the read-only
                       computation behind the ledger endpoint (month_ledger)

A measured part the product does not have yet (ImportError, no URL, 404) is reported as "not
available", any other failure with its exception: the table still prints. Targets (issue 13):
panel under 300 ms server time with the same query count at 100 and 1,000 patients; the
ledger for 1,000 patients under 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import random
import statistics
import sys
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

if not __package__:  # run as a script: the project's root, not this folder, on the path
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks import evaluate, ingest, scale

DATABASE_PREFIX = "vigil_bench_panel"
DEFAULT_DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE_PREFIX}"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
SEED = 20261313
ZONE = "Europe/Amsterdam"
SMALL_TEAM = "Panel clinic, small team"
LARGE_TEAM = "Panel clinic, large team"
MEASURED_ALL = "panel-nurse"  # a nurse of both teams: every patient
MEASURED_SMALL = "panel-nurse-small"  # a nurse of the small team only
API_PATH = "/api/v1/panel"
PANEL_TARGET_MS = 300.0
LEDGER_TARGET_S = 10.0

# The conditions an episode monitors, by kind of patient (ICD-10-CM).
CONDITIONS = {
    scale.CGM: ["E11.65"],
    "heart_failure": ["I50.9", "I10"],
    "hypertension": ["I10"],
    "diabetes": ["E11.9", "I10"],
    "anticoagulation": ["Z79.01", "I48.91"],
    "copd": ["J44.9"],
}
ACTIVITIES = {  # activity: (weight, interactive)
    "data_review": (50, False),
    "phone_call": (20, True),
    "message": (15, False),
    "care_plan": (10, False),
    "video_call": (5, True),
}


def in_small_team(index: int) -> bool:
    return index % 100 < 10


def kind_of(index: int) -> str:
    return scale.CGM if index % 10 == 0 else scale.KINDS[index % len(scale.KINDS)]


# --- Generation -------------------------------------------------------------------------------


def generated(url: str) -> dict | None:
    """What the last generation of this database recorded (its statistics, kept as the
    database's comment, written last); {} if it exists unfinished, None if it is missing."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(scale.database_url(url, "postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    if row is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return json.loads(row[0])
    return {}


def mark_generated(url: str, stats: dict) -> None:
    name = urlsplit(url).path.lstrip("/")
    text = json.dumps(stats, default=str).replace("'", "''")
    with evaluate.pg(url) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{text}'")


def enrol(patients: int) -> dict:
    """The two teams, their members and the patients (the product's enrol_patient)."""
    from django.contrib.auth import get_user_model

    from alerts.models import CareTeam, CareTeamMembership, CareTeamRole
    from alerts.teams import sync_role_groups
    from monitoring.enrolment import enrol_patient

    User = get_user_model()
    teams = {
        "small": CareTeam.objects.create(name=SMALL_TEAM),
        "large": CareTeam.objects.create(name=LARGE_TEAM),
    }
    measured_all = User.objects.create_user(username=MEASURED_ALL, is_staff=True)
    measured_small = User.objects.create_user(username=MEASURED_SMALL, is_staff=True)
    staff = {}
    users = [measured_all, measured_small]
    for label, team in teams.items():
        members = {
            "physician": User.objects.create_user(username=f"panel-physician-{label}",
                                                  is_staff=True),
            "coordinator": User.objects.create_user(username=f"panel-coordinator-{label}",
                                                    is_staff=True),
            "nurses": [User.objects.create_user(username=f"panel-nurse-{label}-{n}",
                                                is_staff=True) for n in (1, 2)],
        }  # fmt: skip
        CareTeamMembership.objects.create(team=team, user=members["physician"],
                                          role=CareTeamRole.PHYSICIAN)  # fmt: skip
        CareTeamMembership.objects.create(team=team, user=members["coordinator"],
                                          role=CareTeamRole.COORDINATOR)  # fmt: skip
        for nurse in [*members["nurses"], measured_all]:
            CareTeamMembership.objects.create(team=team, user=nurse, role=CareTeamRole.NURSE)
        users += [members["physician"], members["coordinator"], *members["nurses"]]
        staff[label] = {
            "physician": members["physician"].pk,
            "coordinator": members["coordinator"].pk,
            # Who logs time and signs off reviews: the nurses (the measured one too) and
            # the physician.
            "workers": [n.pk for n in members["nurses"]] + [measured_all.pk],
        }
    CareTeamMembership.objects.create(
        team=teams["small"], user=measured_small, role=CareTeamRole.NURSE
    )
    sync_role_groups(users=users)
    rows = []
    for index in range(patients):
        kind = kind_of(index)
        label = "small" if in_small_team(index) else "large"
        protocols = scale.CGM_PROTOCOLS if kind == scale.CGM else scale.ROUTINES[kind][0]
        patient = enrol_patient(
            external_id=f"PANEL-{index:06d}",
            name=f"Panel patient {index}",
            timezone=ZONE,
            care_team=teams[label],
            protocols=protocols,
        )
        rows.append({"id": patient.pk, "kind": kind, "team": label})
    return {"patients": rows, "staff": staff, "teams": {k: t.pk for k, t in teams.items()}}


def fill_device_days(url: str, patient_ids: list[int]) -> int:
    """The device days of the generated readings, as the ingest statement writes them: the
    local day in the patient's zone of each device-entered reading other than a dose (the
    statement of monitoring migration 0018's backfill, for these patients)."""
    from monitoring.models import DeviceDay, Entry, Metric, Patient, Reading

    with evaluate.pg(url) as conn:
        cursor = conn.execute(
            f"INSERT INTO {DeviceDay._meta.db_table} (patient_id, day) "
            "SELECT DISTINCT r.patient_id, (r.measured_at AT TIME ZONE p.timezone)::date "
            f"FROM {Reading._meta.db_table} r JOIN {Patient._meta.db_table} p "
            "ON p.id = r.patient_id "
            "WHERE r.entry = %s AND r.metric <> %s AND r.patient_id = ANY(%s) "
            "ORDER BY 1, 2 ON CONFLICT DO NOTHING",
            [Entry.DEVICE.value, Metric.DOSE.value, patient_ids],
        )
        return cursor.rowcount


def check_device_days(patient_ids: list[int]) -> None:
    """The device days of a few patients, recomputed as the ingest does (Python's zoneinfo
    on each reading's instant), must be exactly the rows written."""
    from monitoring.models import DeviceDay, Entry, Metric, Patient, Reading

    for patient in Patient.objects.filter(pk__in=patient_ids):
        zone = zoneinfo.ZoneInfo(patient.timezone)
        expected = {
            at.astimezone(zone).date()
            for at in Reading.objects.filter(patient_id=patient.pk, entry=Entry.DEVICE)
            .exclude(metric=Metric.DOSE)
            .values_list("measured_at", flat=True)
            .iterator()
        }
        stored = set(DeviceDay.objects.filter(patient_id=patient.pk).values_list("day", flat=True))
        if expected != stored:
            raise SystemExit(
                f"device days of patient {patient.pk}: {len(stored)} stored, "
                f"{len(expected)} expected ({len(expected ^ stored)} differ)"
            )


def copy_model(conn, model, rows: list[dict]) -> int:
    """COPY `rows` (attname → value) into the model's table. A concrete field missing from a
    row takes its default, or NULL if nullable (a field added later needs no change here);
    the auto key is left to the database."""
    from django.db import models
    from psycopg.types.json import Jsonb

    fields = [
        f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)
        and getattr(f, "column", None)
    ]  # fmt: skip
    fallback = {}
    for f in fields:
        if f.has_default():
            fallback[f.attname] = f.get_default()
        elif f.null:
            fallback[f.attname] = None
    missing = {f.attname for f in fields} - set(fallback) - set(rows[0] if rows else ())
    if missing:
        raise SystemExit(f"{model.__name__}: no value for {sorted(missing)}")
    json_fields = {f.attname for f in fields if isinstance(f, models.JSONField)}
    columns = ", ".join(f'"{f.column}"' for f in fields)
    statement = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"
    with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            values = []
            for f in fields:
                value = row.get(f.attname, fallback.get(f.attname))
                values.append(Jsonb(value) if f.attname in json_fields else value)
            copy.write_row(values)
    return len(rows)


def create_episodes(population: dict, days: int, now: datetime, rng: random.Random) -> dict:
    """One open episode per patient; returns patient id → (start date, team label)."""
    from program.models import ConsentMethod, Episode

    today = now.date()
    episodes, starts = [], {}
    for patient in population["patients"]:
        staff = population["staff"][patient["team"]]
        start = today - timedelta(days=rng.randrange(0, days))
        consented = rng.random() >= 0.02
        consent_at = datetime(start.year, start.month, start.day, 9, tzinfo=UTC) + timedelta(
            minutes=rng.randrange(0, 480)
        )
        episodes.append(
            Episode(
                patient_id=patient["id"],
                start=start,
                consent_at=consent_at if consented else None,
                consent_method=rng.choice(list(ConsentMethod.values)) if consented else "",
                billing_practitioner_id=staff["physician"],
                conditions=CONDITIONS[patient["kind"]],
                created_by_id=staff["coordinator"],
            )
        )
        starts[patient["id"]] = start
    Episode.objects.bulk_create(episodes, batch_size=1000)
    return starts


def working_moment(day: date, rng: random.Random, now: datetime) -> datetime | None:
    """A moment in working hours (08:00–18:00 in the patients' zone) of `day`, in the past."""
    local = datetime(day.year, day.month, day.day, 8, tzinfo=zoneinfo.ZoneInfo(ZONE))
    moment = (local + timedelta(seconds=rng.randrange(0, 10 * 3600))).astimezone(UTC)
    return moment if moment < now else None


def time_entry_rows(
    population: dict, starts: dict, count: int, now: datetime, rng: random.Random
) -> list[dict]:
    """`count` time entries, each patient's share in proportion to its episode's length."""
    from program.models import TimeSource

    patients = population["patients"]
    weights = [(now.date() - starts[p["id"]]).days + 1 for p in patients]
    activities = list(ACTIVITIES)
    activity_weights = [ACTIVITIES[a][0] for a in activities]
    rows = []
    while len(rows) < count:
        patient = rng.choices(patients, weights=weights)[0]
        staff = population["staff"][patient["team"]]
        day = starts[patient["id"]] + timedelta(
            days=rng.randrange(0, (now.date() - starts[patient["id"]]).days + 1)
        )
        started = working_moment(day, rng, now - timedelta(hours=1))
        if started is None:
            continue
        activity = rng.choices(activities, weights=activity_weights)[0]
        minutes = max(2, min(45, round(rng.lognormvariate(2.0, 0.6))))
        timer = rng.random() < 0.6
        capped = timer and rng.random() < 0.005
        if capped:
            minutes = 60
        stopped = started + timedelta(minutes=minutes)
        recent = now - started < timedelta(days=3)
        approved = not capped and rng.random() < (0.3 if recent else 0.95)
        approved_at = (
            min(now, stopped + timedelta(hours=rng.randrange(20, 72))) if approved else None
        )
        rows.append({
            "user_id": rng.choice(staff["workers"] + [staff["physician"]]),
            "patient_id": patient["id"],
            "alert_id": None,
            "source": TimeSource.TIMER.value if timer else TimeSource.MANUAL.value,
            "started_at": started,
            "stopped_at": stopped if timer else None,
            "minutes": minutes,
            "activity": activity,
            "interactive": ACTIVITIES[activity][1],
            "note": "",
            "capped": capped,
            "approved_by_id": staff["physician"] if approved else None,
            "approved_at": approved_at,
            "created_at": stopped,
            "updated_at": approved_at or stopped,
        })  # fmt: skip
    return rows


def review_and_note_rows(
    population: dict, starts: dict, now: datetime, rng: random.Random
) -> tuple[list[dict], list[dict]]:
    """Sign-offs about every two weeks for 80 % of the patients (the rest never reviewed),
    and a note or call a month."""
    from program.models import CallOutcome, NoteKind

    reviews, notes = [], []
    for patient in population["patients"]:
        staff = population["staff"][patient["team"]]
        span = (now.date() - starts[patient["id"]]).days + 1
        reviewed = rng.random() < 0.8
        for _ in range(max(1, span // 14) if reviewed else 0):
            at = working_moment(starts[patient["id"]] + timedelta(days=rng.randrange(span)), rng,
                                now)  # fmt: skip
            if at is not None:
                reviews.append({"patient_id": patient["id"], "at": at, "note": "",
                                "reviewer_id": rng.choice(staff["workers"])})  # fmt: skip
        for _ in range(span // 30):
            at = working_moment(starts[patient["id"]] + timedelta(days=rng.randrange(span)), rng,
                                now)  # fmt: skip
            if at is None:
                continue
            call = rng.random() < 0.5
            notes.append({
                "patient_id": patient["id"], "author_id": rng.choice(staff["workers"]), "at": at,
                "kind": NoteKind.CALL.value if call else NoteKind.NOTE.value,
                "call_outcome": rng.choice(list(CallOutcome.values)) if call else "",
                "text": "Generated by benchmarks/panel.py",
            })  # fmt: skip
    return reviews, notes


def open_alerts(population: dict, share: float, rng: random.Random) -> int:
    """Threshold crossings for a share of the patients, through the product's ingest and
    evaluation: open alerts of the rules the patients are enrolled on."""
    from django.utils import timezone

    from alerts.models import Alert
    from monitoring.evaluation import evaluate_pending_readings
    from monitoring.ingest import record_readings

    crossing_for = {
        scale.CGM: ("glucose_high", "glucose_low"),
        "copd": ("spo2_low",),
        "anticoagulation": ("inr_high", "bp_high"),
    }
    chosen = [p for p in population["patients"] if rng.random() < share]
    for patient in chosen:
        group = rng.choice(crossing_for.get(patient["kind"], ("bp_high",)))
        metric, fields = evaluate.CROSSINGS[group]
        at = timezone.now() - timedelta(minutes=rng.randrange(5, 2 * 24 * 60))
        item = evaluate.make_item(metric, fields, at)
        record_readings(patient=scale.patient_row(patient["id"]), items=[item])
        evaluate_pending_readings(patient_id=patient["id"])
    return Alert.objects.exclude(status="resolved").count()


def generate(args) -> dict:
    """Re-create the database and fill it; returns what took how long."""
    import django

    stats: dict = {}
    ingest.setup_database(args.database_url, prefix=DATABASE_PREFIX)
    evaluate.flush_broker(args.broker_url)
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from program.models import PatientNote, Review, TimeEntry

    scale.check_plausible()
    began = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    stats["migrate"] = time.monotonic() - began
    rng = random.Random(SEED)
    began = time.monotonic()
    population = enrol(args.patients)
    stats["enrol"] = time.monotonic() - began
    cgm = sum(1 for p in population["patients"] if p["kind"] == scale.CGM)
    shape = scale.Shape(args.patients, cgm, args.days, args.days, args.manual_share)
    print(
        f"enrolled {args.patients} patients ({cgm} CGM) in {stats['enrol']:.0f} s; "
        f"{args.days} days of history, ~{shape.expected_rows():,} readings",
        flush=True,
    )
    connections.close_all()  # generate_history forks its text makers
    now = datetime.now(UTC)
    end = int(now.timestamp()) // 60 * 60 - 600  # ten minutes ago, on the minute
    stats["copy"] = scale.generate_history(
        args.database_url, population, shape, end, args.chunk_rows, args.jobs
    )
    ids = [p["id"] for p in population["patients"]]
    began = time.monotonic()
    stats["device_days"] = fill_device_days(args.database_url, ids)
    stats["device_days_s"] = time.monotonic() - began
    sample = [population["patients"][i]["id"] for i in (0, 1, 2, 5) if i < len(ids)]
    check_device_days(sample)
    print(f"device days: {stats['device_days']:,} in {stats['device_days_s']:.1f} s (checked "
          f"against zoneinfo for {len(sample)} patients)", flush=True)  # fmt: skip
    began = time.monotonic()
    starts = create_episodes(population, args.days, now, rng)
    entries = time_entry_rows(population, starts, args.time_entries, now, rng)
    reviews, notes = review_and_note_rows(population, starts, now, rng)
    with evaluate.pg(args.database_url) as conn:
        stats["time_entries"] = copy_model(conn, TimeEntry, entries)
        stats["reviews"] = copy_model(conn, Review, reviews)
        stats["notes"] = copy_model(conn, PatientNote, notes)
    stats["program_s"] = time.monotonic() - began
    print(
        f"program: {len(starts):,} episodes, {stats['time_entries']:,} time entries, "
        f"{stats['reviews']:,} reviews, {stats['notes']:,} notes/calls in "
        f"{stats['program_s']:.1f} s",
        flush=True,
    )
    began = time.monotonic()
    stats["alerts"] = open_alerts(population, args.alert_share, rng)
    stats["alerts_s"] = time.monotonic() - began
    connections.close_all()
    evaluate.flush_broker(args.broker_url)
    stats["vacuum"] = scale.vacuum_analyze(args.database_url)
    print(f"{stats['alerts']} open alerts in {stats['alerts_s']:.1f} s; VACUUM ANALYZE "
          f"{stats['vacuum']:.0f} s", flush=True)  # fmt: skip
    stats |= {"patients": args.patients, "days": args.days, "at": now.isoformat(timespec="seconds")}
    mark_generated(args.database_url, stats)  # last: a --reuse run takes only a finished one
    return stats


# --- What is measured: the product's calls, each in one small function -------------------------
# The panel and the ledger were written beside this benchmark; when a name or a signature
# changes, these functions are the only places to adapt.

ADMIN_PANEL_NAMES = ("admin:panel", "admin:program_panel")


def admin_panel_path(override: str | None) -> str | None:
    """The admin panel page's path: --admin-path, a known URL name, or the one admin URL
    whose name says "panel" and takes no argument."""
    from django.urls import NoReverseMatch, get_resolver, reverse

    if override:
        return override
    for name in ADMIN_PANEL_NAMES:
        with contextlib.suppress(NoReverseMatch):
            return reverse(name)
    namespace = get_resolver().namespace_dict.get("admin")
    if namespace is None:
        return None
    views = ("_add", "_change", "_delete", "_history", "_autocomplete")
    names = sorted(
        (not key.endswith("_changelist"), key)  # a model's list first, then custom views
        for key in namespace[1].reverse_dict
        if isinstance(key, str) and "panel" in key and not key.endswith(views)
    )
    for _, name in names:
        with contextlib.suppress(NoReverseMatch):
            return reverse(f"admin:{name}")
    return None


def call_panel_page(user) -> str:
    """program.panel.panel_page for everything the user may see: first page, defaults."""
    from program.panel import panel_page

    page = panel_page(user=user)
    rows, count = getattr(page, "rows", None), getattr(page, "count", None)
    return f"{len(rows)} rows of {count}" if rows is not None else ""


# program.ledger's month for every patient: the stored recomputation (writes the lines), and
# the read-only computation behind GET /billing/ledger, where it has one.
LEDGER_RECOMPUTE = ("recompute_ledger", "compute_month", "refresh_month", "refresh_ledger")
LEDGER_READ = ("month_ledger",)


def ledger_function(names: tuple[str, ...]):
    from program import ledger

    for name in names:
        function = getattr(ledger, name, None)
        if callable(function):
            return function
    raise LookupError(f"program.ledger has none of {', '.join(names)}")


def call_ledger(names: tuple[str, ...], month: date) -> str:
    """The month (its first day) for all patients; the ledger's own Month if it has one."""
    from program import ledger

    function = ledger_function(names)
    if "year" in inspect.signature(function).parameters:
        result = function(year=month.year, month=month.month)
    else:
        month_type = getattr(ledger, "Month", None)
        result = function(month=month_type.of(month) if month_type else month)
    lines = getattr(result, "lines", result)
    return f"{len(lines):,} lines" if isinstance(lines, list) else ""


# --- Measuring --------------------------------------------------------------------------------


class NotAvailable(Exception):
    """The product has no such thing yet (not a failure of what it has)."""


@dataclass
class Measure:
    name: str
    scope: str
    samples: list[float] = field(default_factory=list)  # ms (the ledger: s)
    queries: list[int] = field(default_factory=list)
    note: str = ""
    unit: str = "ms"

    @property
    def available(self) -> bool:
        return bool(self.samples)

    def median(self) -> float:
        return statistics.median(self.samples)

    def p95(self) -> float:
        return evaluate.percentile(self.samples, 0.95)

    def query_text(self) -> str:
        low, high = min(self.queries), max(self.queries)
        return f"{low}" if low == high else f"{low}–{high}"


def repeat(
    name: str, scope: str, rounds: int, call, unit: str = "ms", warm_up: bool = True
) -> Measure:
    """One untimed warm-up (unless not), then `rounds` timed calls, each with its query count.
    `call` raises NotAvailable (or ImportError/LookupError) when the product lacks the thing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    measure = Measure(name, scope, unit=unit)
    scale_factor = 1000.0 if unit == "ms" else 1.0
    try:
        note = call() if warm_up else ""
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                note = call()
                elapsed = time.perf_counter() - started
            measure.samples.append(elapsed * scale_factor)
            measure.queries.append(len(queries.captured_queries))
        measure.note = note or ""
    except (NotAvailable, ImportError, LookupError) as error:
        measure.note = f"not available: {error}"
    except Exception as error:  # reported in the table: the other rows still run
        measure.note = f"failed: {type(error).__name__}: {str(error)[:160]}"
        measure.samples.clear()
    return measure


def get(client, path: str, headers: dict):
    def call() -> str:
        response = client.get(path, **headers)
        if response.status_code == 404:
            raise NotAvailable(f"{path} answers 404")
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.content[:120]!r}")
        return describe(response)

    return call


def describe(response) -> str:
    """Rows on the page, if the body says (a JSON list or page of results)."""
    if response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            rows = body.get("results", body.get("rows"))
            total = body.get("count")
            if isinstance(rows, list):
                return f"{len(rows)} rows" + (f" of {total}" if total is not None else "")
        elif isinstance(body, list):
            return f"{len(body)} rows"
    return f"{len(response.content) / 1024:.0f} KiB"


def measure_panel(args) -> tuple[list[Measure], dict]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from alerts.models import CareTeamMembership
    from monitoring.auth import issue_staff_token
    from monitoring.models import Patient

    User = get_user_model()
    admin_path = admin_panel_path(args.admin_path)
    scopes = []
    for username in (MEASURED_SMALL, MEASURED_ALL):
        user = User.objects.get(username=username)
        teams = CareTeamMembership.objects.filter(user=user).values("team_id")
        count = Patient.objects.filter(care_team_id__in=teams).count()
        scopes.append((user, f"{count:,} patients"))
    results = []
    for user, scope in scopes:
        client = Client()
        client.force_login(user)
        token = issue_staff_token(user=user)[1]
        api = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        print(f"measuring {scope} …", flush=True)
        if admin_path is None:
            note = "not available: no admin URL named for a panel"
            results.append(Measure("admin panel page", scope, note=note))
        else:
            results.append(repeat(f"admin panel page ({admin_path})", scope, args.rounds,
                                  get(client, admin_path, {})))  # fmt: skip
        for query in ["", *args.query]:
            path = f"{API_PATH}?{query}" if query else API_PATH
            results.append(repeat(f"GET {path}", scope, args.rounds,
                                  get(Client(), path, api)))  # fmt: skip
        results.append(repeat("panel_page() in-process", scope, args.rounds,
                              lambda user=user: call_panel_page(user)))  # fmt: skip
    return results, {"scopes": [s for _, s in scopes]}


def measure_ledger(args) -> list[Measure]:
    """The month for every patient: the stored recomputation from an empty ledger (the
    benchmark's own database: nothing exported), `--ledger-rounds` times with no warm-up (the
    first run writes the month's lines, the later ones recompute them, as a refresh does);
    then the read-only computation, after a warm-up."""
    from monitoring.models import Patient
    from program.models import LedgerLine

    month = args.ledger_month
    try:
        LedgerLine.objects.all().delete()
    except Exception as error:  # e.g. a later model protecting its lines: say so, go on
        print(f"  could not empty the ledger ({type(error).__name__}): runs recompute it")
    scope = f"{Patient.objects.count():,} patients"
    return [
        repeat(f"ledger {month:%Y-%m}, recomputed and stored", scope, args.ledger_rounds,
               lambda: call_ledger(LEDGER_RECOMPUTE, month), unit="s", warm_up=False),
        repeat(f"ledger {month:%Y-%m}, read only", scope, args.ledger_rounds,
               lambda: call_ledger(LEDGER_READ, month), unit="s"),
    ]  # fmt: skip


# --- The report -------------------------------------------------------------------------------


def print_table(results: list[Measure], ledgers: list[Measure], scopes: list[str]) -> None:
    names = list(dict.fromkeys(m.name for m in results))
    by = {(m.name, m.scope): m for m in results}
    labels = [f"{m.name} ({m.scope})" for m in ledgers]
    width = max(len(n) for n in [*(f"{n}: median / p95" for n in names), *labels]) + 2
    header = f"{'measurement':<{width}}" + "".join(f"{s:>26}" for s in scopes) + "  target / met"
    print()
    print(header)
    print("-" * len(header))
    for name in names:
        row = [by[(name, scope)] for scope in scopes]
        if not all(m.available for m in row):
            notes = "; ".join(dict.fromkeys(m.note for m in row if not m.available))
            print(f"{name:<{width}}" + "".join(f"{'—':>26}" for _ in row) + f"  {notes}")
            continue
        cells = [f"{m.median():.1f} / {m.p95():.1f} ms" for m in row]
        fast = all(m.median() < PANEL_TARGET_MS for m in row)
        print(f"{name + ': median / p95':<{width}}" + "".join(f"{c:>26}" for c in cells)
              + f"  < {PANEL_TARGET_MS:.0f} ms: {'yes' if fast else 'NO'}")  # fmt: skip
        counts = [m.query_text() for m in row]
        same = len({tuple(sorted(set(m.queries))) for m in row}) == 1 and all(
            len(set(m.queries)) == 1 for m in row
        )
        print(f"{'  queries':<{width}}" + "".join(f"{c:>26}" for c in counts)
              + f"  equal: {'yes' if same else 'NO'}")  # fmt: skip
        if any(m.note for m in row):
            print(f"{'  page':<{width}}" + "".join(f"{m.note:>26}" for m in row))
    for ledger, label in zip(ledgers, labels, strict=True):
        if not ledger.available:
            print(f"{ledger.name:<{width}}{'—':>26}{'—':>26}  {ledger.note}")
            continue
        # Every run counts: the first of the stored one (writing the lines) is what a new
        # month costs.
        met = "yes" if max(ledger.samples) < LEDGER_TARGET_S else "NO"
        worst = f"{max(ledger.samples):.2f} s slowest"
        print(f"{label:<{width}}{'':>26}{worst:>26}  < {LEDGER_TARGET_S:.0f} s: {met}")
        runs = ", ".join(f"{s:.2f}" for s in ledger.samples)
        print(f"{'  runs (s); queries; result':<{width}}{runs:>26}{ledger.query_text():>26}"
              f"  {ledger.note}")  # fmt: skip
    print(
        "(server time in-process, median / p95 of the rounds after a warm-up; the ledger: "
        "wall s of each run; the stored recomputation from an empty ledger with no warm-up, "
        "so its first run writes the month's lines and later runs recompute them)"
    )


def inventory() -> str:
    from alerts.models import Alert
    from monitoring.models import DeviceDay, Reading
    from program.models import Episode, PatientNote, Review, TimeEntry

    return (
        f"{Reading.objects.count():,} readings, {DeviceDay.objects.count():,} device days, "
        f"{Episode.objects.count():,} episodes, {TimeEntry.objects.count():,} time entries, "
        f"{Review.objects.count():,} reviews, {PatientNote.objects.count():,} notes, "
        f"{Alert.objects.exclude(status='resolved').count():,} open alerts"
    )


def last_full_month(today: date) -> date:
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000, help="patients in all (1,000)")
    parser.add_argument("--days", type=int, default=365, help="days of history (365)")
    parser.add_argument("--time-entries", type=int, help="time entries (50 per patient)")
    parser.add_argument(
        "--manual-share",
        type=float,
        default=0.05,
        help="share of the routines' device measurements typed in by hand",
    )
    parser.add_argument("--alert-share", type=float, default=0.05,
                        help="share of patients with an open alert")  # fmt: skip
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the existing database; generate only if it is missing",
    )
    parser.add_argument(
        "--rounds", type=int, default=20, help="timed requests per panel path (0: generate only)"
    )
    parser.add_argument("--ledger-rounds", type=int, default=3, help="ledger runs")
    parser.add_argument(
        "--ledger-month",
        type=lambda s: datetime.strptime(s, "%Y-%m").date(),
        help="YYYY-MM (the last full month)",
    )
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        help="also GET /api/v1/panel?QUERY (e.g. a filter or sort); repeatable",
    )
    parser.add_argument("--admin-path", help="the admin panel page's path, if not found by name")
    parser.add_argument("--jobs", type=int, default=2, help="processes making the COPY text")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per COPY")
    parser.add_argument(
        "--database-url", default=os.environ.get("PANEL_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("PANEL_BROKER_URL", DEFAULT_BROKER_URL)
    )
    args = parser.parse_args(argv)
    if not urlsplit(args.database_url).path.lstrip("/").startswith(DATABASE_PREFIX):
        parser.error(f"the database's name must start {DATABASE_PREFIX} (it is dropped)")
    evaluate.check_broker_url(args.broker_url)
    if args.time_entries is None:
        args.time_entries = 50 * args.patients
    args.ledger_month = args.ledger_month or last_full_month(datetime.now(UTC).date())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    began = time.monotonic()
    load = os.getloadavg()[0]
    evaluate.configure_environment(args)
    os.environ["VIGIL_REQUIRE_2FA"] = "0"
    stats = generated(args.database_url) if args.reuse else None
    if stats == {}:
        # Not re-created behind the user's back (with this run's sizes, which may differ).
        raise SystemExit(
            f"{args.database_url} exists but its generation did not finish: run without "
            "--reuse to re-create it"
        )
    if stats is not None:
        print(f"reusing {args.database_url} (generated {stats.get('at')})")
    else:
        print(f"load average {load:.2f}; re-creating {args.database_url} …")
        stats = generate(args)
        print(f"generated in {time.monotonic() - began:.0f} s")
    import django

    django.setup()
    if args.rounds == 0:
        print("measure with --reuse")
        return 0
    from django.db import connections

    connections.close_all()
    # A part not built yet answers 404: reported in the table, not logged as a warning.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    results, info = measure_panel(args)
    print("measuring the ledger …", flush=True)
    ledgers = measure_ledger(args)
    print()
    print(
        f"Panel and ledger benchmark — {inventory()}; {os.cpu_count()} CPUs, load average at "
        f"start {load:.2f}, at end {os.getloadavg()[0]:.2f}"
    )
    if stats:
        copied = stats["copy"]
        print(
            f"generation ({stats['at']}): readings {copied['rows']:,} by COPY in "
            f"{copied['seconds']:.0f} s "
            f"({copied['rows'] / copied['seconds']:,.0f} rows/s; {copied['keys']}), enrolment "
            f"{stats['enrol']:.0f} s, device days {stats['device_days_s']:.0f} s, program rows "
            f"{stats['program_s']:.0f} s, alerts {stats['alerts_s']:.0f} s, VACUUM ANALYZE "
            f"{stats['vacuum']:.0f} s"
        )
    print(f"database size {scale.database_size(args.database_url) / 2**30:.2f} GiB")
    print_table(results, ledgers, info["scopes"])
    print(f"total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
