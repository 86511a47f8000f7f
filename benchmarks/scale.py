"""Scale benchmark: the same paths against a large generated history and its empty twin.

    .venv/bin/python benchmarks/scale.py                       # 20 million readings (long)
    .venv/bin/python benchmarks/scale.py --readings 2000000    # a smaller history
    .venv/bin/python benchmarks/scale.py --small               # ~200,000 readings: a check
    .venv/bin/python benchmarks/scale.py --reuse               # measure again, no generation
    .venv/bin/python benchmarks/scale.py --rounds 0            # generate only

Two databases in one run (dropped and re-created; names start `vigil_scale`):

  large   the patients, their rules and tokens, and a generated history of `--readings`
          readings, already evaluated, with a few open alerts;
  empty   a copy of `large` taken after enrolment (CREATE DATABASE … TEMPLATE), before any
          history: the same patients, rules, tokens and ids, and of the history only the
          last `--window-days` (14) of the patients whose paths are measured, the same rows
          (so pages, charts and evaluation windows hold the same data in both; 0: none).

Population: `--patients` (default readings / 4,000) in `--teams` care teams (a nurse of team
0 is the one who reads). A share (`--cgm-share`, 10 %) wear a CGM: a glucose every 5 minutes
for `--cgm-days` (90), enrolled on diabetes. The others are spread over the five monitoring
protocols (heart_failure, hypertension, diabetes, anticoagulation, copd), each with the
measurements its routine asks for (twice-daily blood pressure with pulse, a daily weight,
fingerstick glucose, a weekly INR and daily dose, SpO2 and temperature), over as many days
as it takes to reach `--readings` in all. Values stay inside the clinical reference's
plausible ranges (checked against `monitoring.units` before generating).

Generation: text COPY (psycopg 3 `cursor.copy`) into the readings table in big chunks, its
columns taken from `Reading._meta.concrete_fields` (whatever the table is: plain or
partitioned; a partitioned table gets monthly partitions over the history where none covers
it, through `monitoring.partitions` where the product has it). If the schema keeps
idempotency keys in a table of their own (a monitoring model with `patient` and `client_id`
whose table name says `key`), it is filled from the readings. Then
VACUUM ANALYZE on both databases, so plans are the plans of a live system.

Measured against each database by the same code in a subprocess of its own, empty first
(in the order: live evaluation, reads, summaries, ingestion, which adds readings; the table
shows ingestion first):

  ingestion        POST /api/v1/readings, 500-item batches over 4 connections, no worker
                   (readings/s, median of --ingest-runs)
  live evaluation  single-reading POSTs, one at a time, to CGM and blood-pressure patients
                   with a worker running: POST → reading evaluated and POST → alert row
                   (threshold crossings), timed by NOTIFY triggers (benchmarks/evaluate.py)
  API reads        GET /api/v1/patients/{id}/readings (default page, ?type=glucose, the
                   second page via `next`) as the nurse, with a staff token
  admin reads      the readings changelist, one patient's readings, the patient page and an
                   alert page, as the nurse with a session
  panel            GET /api/v1/panel (skipped when the product has none)
  CGM summaries    the scheduled cgm_summary rules of one CGM patient, in-process

Each read is timed client-side (wall ms, median of --repeat after one warm-up; a read whose
warm-up takes over 5 s is timed once more only). The table shows large ms, empty ms and
large / empty (for ingestion, empty readings/s / large readings/s), flagging every path
above 1.5×. gunicorn (2 sync workers) and the Celery worker are those of evaluate.py; Redis
DB 6 is the broker (flushed). The databases are kept for --reuse (and inspection).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

if not __package__:  # run as a script: the project's root, not this folder, on the path
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks import evaluate, ingest

ROOT = evaluate.ROOT

DATABASE_PREFIX = "vigil_scale"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/6"
DEFAULT_PLAN = Path(tempfile.gettempdir()) / "vigil_scale_plan.json"
SEED = 20261206
FLAG = 1.5
TABLE = "monitoring_reading"
STEP = 300  # CGM: a glucose every 5 minutes
UTC_OFFSET_MINUTES = 60  # Europe/Amsterdam in winter, as the patients' zone


# --- The population ---------------------------------------------------------------------------

# Per kind of patient: the protocols they are enrolled on and what they measure each day.
# A measurement is (metric, local hour); blood pressures carry a pulse (a second row).
ROUTINES = {
    "heart_failure": (
        ["heart_failure", "hypertension"],
        [("blood_pressure", 7), ("weight", 7), ("blood_pressure", 19)],
    ),
    "hypertension": (["hypertension"], [("blood_pressure", 7), ("blood_pressure", 20)]),
    "diabetes": (
        ["diabetes", "hypertension"],
        [("glucose", 7), ("blood_pressure", 8), ("glucose", 18)],
    ),
    "anticoagulation": (["anticoagulation"], [("dose", 8), ("blood_pressure", 9), ("inr", -1)]),
    "copd": (["copd"], [("spo2", 8), ("temperature", 8), ("heart_rate", 8), ("spo2", 20)]),
}
KINDS = list(ROUTINES)
CGM = "cgm"
CGM_PROTOCOLS = ["diabetes"]
ROWS_PER_DAY = {
    kind: sum(2 if metric == "blood_pressure" else 1 / 7 if hour < 0 else 1 for metric, hour in m)
    for kind, (_, m) in ROUTINES.items()
}

# The value ranges generated, by metric (canonical units); each inside the clinical
# reference's plausible range (checked at start, see check_plausible).
RANGES = {
    "glucose": (40, 400),
    "systolic": (85, 200),
    "diastolic": (45, 125),
    "heart_rate": (45, 130),
    "weight": (45.0, 160.0),
    "inr": (1.2, 5.5),
    "spo2": (84, 100),
    "temperature": (35.6, 39.0),
}


def check_plausible() -> None:
    from monitoring.units import metric_units

    units = metric_units()
    limits = {
        "glucose": units["glucose"].plausible,
        "systolic": units["blood_pressure"].components["systolic"],
        "diastolic": units["blood_pressure"].components["diastolic"],
        **{m: units[m].plausible for m in ("heart_rate", "weight", "inr", "spo2", "temperature")},
    }
    for name, (low, high) in RANGES.items():
        if not (limits[name].contains(low) and limits[name].contains(high)):
            raise SystemExit(f"generated {name} {low}–{high} is outside {limits[name]}")


@dataclass
class Shape:
    patients: int
    cgm_patients: int
    cgm_days: int
    other_days: int
    # The share of the routines' device measurements typed in by hand instead (entry
    # "manual", source "app": they do not count as device days). 0 draws nothing extra, so a
    # history without them is the same, reading for reading, as before the option existed.
    manual_share: float = 0.0

    def expected_rows(self) -> int:
        others = [KINDS[i % len(KINDS)] for i in range(self.patients - self.cgm_patients)]
        cgm = self.cgm_patients * self.cgm_days * 86400 // STEP
        return cgm + int(sum(ROWS_PER_DAY[k] for k in others) * self.other_days)


def shape_for(args) -> Shape:
    patients = args.patients or max(60, args.readings // 4000)
    cgm_patients = max(1, round(patients * args.cgm_share))
    cgm_days = args.cgm_days
    cgm_rows = cgm_patients * cgm_days * 86400 // STEP
    if cgm_rows > args.readings * 0.8:  # a small history: shorter traces, room for the rest
        cgm_days = max(15, int(args.readings * 0.65 / (cgm_patients * 86400 // STEP)))
        cgm_rows = cgm_patients * cgm_days * 86400 // STEP
    others = [KINDS[i % len(KINDS)] for i in range(patients - cgm_patients)]
    per_day = sum(ROWS_PER_DAY[k] for k in others)
    other_days = max(15, round((args.readings - cgm_rows) / per_day)) if per_day else 0
    return Shape(patients, cgm_patients, cgm_days, other_days)


def enrol(shape: Shape, teams: int, tokens_for: int) -> dict:
    """Teams, a nurse of team 0, the patients with their protocols' rules, app tokens for the
    patients that post during the measurement. Returns the plan (JSON) both databases share."""
    from django.contrib.auth import get_user_model

    from alerts.models import CareTeam, CareTeamMembership
    from alerts.teams import sync_role_groups
    from monitoring.auth import issue_app_token
    from monitoring.enrolment import enrol_patient

    care_teams = [CareTeam.objects.create(name=f"Scale clinic {n}") for n in range(teams)]
    nurse = get_user_model().objects.create_user(
        username="scale-nurse", email="nurse@clinic.example", is_staff=True
    )
    CareTeamMembership.objects.create(
        team=care_teams[0], user=nurse, role="nurse", escalation_level=1
    )
    sync_role_groups(users=[nurse])
    patients = []
    for index in range(shape.patients):
        kind = CGM if index < shape.cgm_patients else KINDS[index % len(KINDS)]
        protocols = CGM_PROTOCOLS if kind == CGM else ROUTINES[kind][0]
        patient = enrol_patient(
            external_id=f"SCALE-{index:06d}",
            name=f"Scale patient {index}",
            timezone="Europe/Amsterdam",
            care_team=care_teams[index % teams],
            protocols=protocols,
        )
        patients.append({"id": patient.pk, "kind": kind, "team": index % teams})
    # Who posts and who is read: patients of the nurse's team, CGM and blood pressure.
    visible = [p for p in patients if p["team"] == 0]
    cgm = [p for p in visible if p["kind"] == CGM]
    pressure = [p for p in visible if p["kind"] in ("hypertension", "heart_failure")]
    others = [p for p in visible if p["kind"] not in (CGM,)]
    chosen = {
        "cgm_probes": cgm[:5],
        "bp_probes": pressure[:5],
        "ingest": others[-tokens_for:],
        "alerted": pressure[5:8],
    }
    for group in ("cgm_probes", "bp_probes", "ingest"):
        for patient in chosen[group]:
            patient["token"] = issue_app_token(patient=patient_row(patient["id"]))[1]
    return {"nurse": nurse.username, "patients": patients, **chosen}


def patient_row(patient_id: int):
    from monitoring.models import Patient

    return Patient.objects.get(pk=patient_id)


# --- Databases --------------------------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def clone_database(source_url: str, target: str) -> None:
    """CREATE DATABASE target TEMPLATE source (nothing may be connected to the source)."""
    import psycopg

    if not target.startswith(DATABASE_PREFIX):
        raise SystemExit(f"refusing to drop {target!r}: its name must start {DATABASE_PREFIX}")
    source = urlsplit(source_url).path.lstrip("/")
    admin = database_url(source_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')


def database_size(url: str) -> int:
    with evaluate.pg(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def vacuum_analyze(url: str) -> float:
    began = time.monotonic()
    with evaluate.pg(url) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return time.monotonic() - began


# --- Generating the history -------------------------------------------------------------------

# Every Reading column the generator writes a constant for unless a row kind sets it; the key
# and the evaluation failure bookkeeping are left to the database where it has a default.
CONSTANTS = {
    "metric": None,  # every row kind's template sets it
    "value": None,
    "unit": "",
    "systolic": None,
    "diastolic": None,
    "sent_value": None,
    "sent_unit": "",
    "context": "",
    "medication": "",
    "dose_status": "",
    "scheduled_for": None,
    "utc_offset_minutes": UTC_OFFSET_MINUTES,
    "source": "device",
    "entry": "device",
    "device": None,
    "device_serial": "",
    "trend": "",
    "part_of": None,
    "evaluation_failed_at": None,
    "evaluation_error": "",
}
VARIABLES = ("patient", "client_id", "measured_at", "received_at", "evaluated_at", "fingerprint")


def copy_text(value) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_fields() -> list:
    """The Reading fields COPY writes, in the model's order: all concrete fields but those the
    database fills (the key; a field added later that has a default and no value here)."""
    from monitoring.models import Reading

    chosen = []
    for field in Reading._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.name in CONSTANTS or field.name in VARIABLES:
            chosen.append(field)
        elif field.null:
            CONSTANTS[field.name] = None
            chosen.append(field)
        elif not (field.has_default() or field.has_db_default()):
            raise SystemExit(f"Reading.{field.name}: no generated value and no default")
    return chosen


class Template:
    """One COPY text line of a row kind: its constants baked in, %(name)s for the rest."""

    def __init__(self, fields: list, variables: tuple[str, ...], **constants) -> None:
        parts = []
        for field in fields:
            if field.name in VARIABLES or field.name in variables:
                parts.append(f"%({field.name})s")
            else:
                value = constants.get(field.name, CONSTANTS[field.name])
                parts.append(copy_text(value).replace("%", "%%"))
        self.text = "\t".join(parts) + "\n"


@cache
def _day(number: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=number)).isoformat()


def stamp(epoch: int) -> str:
    day, seconds = divmod(epoch, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day(day)} {hours:02d}:{minutes:02d}:{seconds:02d}+00"


class Generator:
    """The COPY lines of one patient's history, ending at `end` (epoch seconds)."""

    def __init__(self, fields: list, end: int, shape: Shape) -> None:
        self.end = end
        self.shape = shape
        self.fields = fields
        t = Template
        self.templates = {
            "cgm": t(fields, ("value", "sent_value"), metric="glucose", unit="mg/dL",
                     sent_unit="mg/dL"),
            "glucose": t(fields, ("value", "sent_value", "context"), metric="glucose",
                         unit="mg/dL", sent_unit="mg/dL", entry="manual", source="app"),
            "inr": t(fields, ("value", "sent_value"), metric="inr", unit="{INR}",
                     sent_unit="{INR}", entry="manual", source="app"),
            "dose": t(fields, ("scheduled_for", "dose_status", "medication"), metric="dose",
                      entry="manual", source="app"),
        }  # fmt: skip
        # The routines' device measurements, and the same typed in by hand (manual_share).
        device = {
            "blood_pressure": (("systolic", "diastolic"), {"metric": "blood_pressure",
                               "unit": "mm[Hg]", "sent_unit": "mm[Hg]"}),
            "pulse": (("value", "sent_value", "part_of"), {"metric": "heart_rate",
                      "unit": "/min", "sent_unit": "/min"}),
            "heart_rate": (("value", "sent_value"), {"metric": "heart_rate", "unit": "/min",
                           "sent_unit": "/min"}),
            "weight": (("value", "sent_value"), {"metric": "weight", "unit": "kg",
                       "sent_unit": "kg"}),
            "spo2": (("value", "sent_value"), {"metric": "spo2", "unit": "%", "sent_unit": "%"}),
            "temperature": (("value", "sent_value"), {"metric": "temperature", "unit": "Cel",
                            "sent_unit": "Cel"}),
        }  # fmt: skip
        self.by_hand = dict(self.templates)
        for name, (variables, constants) in device.items():
            self.templates[name] = t(fields, variables, **constants)
            self.by_hand[name] = t(fields, variables, **constants, entry="manual", source="app")

    def rows(self, patient: dict, rng: random.Random) -> list[str]:
        if patient["kind"] == CGM:
            return self.cgm(patient["id"], rng)
        return self.routine(patient["id"], patient["kind"], rng)

    @staticmethod
    def _ids(rng: random.Random) -> tuple[str, str]:
        # A random (version 4) client id; the fingerprint, 64 hex digits like a SHA-256 of
        # the content, from the same bits (it is compared, never searched).
        h = f"{rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}", h + h[::-1]

    def cgm(self, patient_id: int, rng: random.Random) -> list[str]:
        """A glucose every 5 minutes: a patient's mean, a slow random walk, meals, clipped to
        the sensor's range; the odd gap where a sensor was changed."""
        low, high = RANGES["glucose"]
        template = self.templates["cgm"].text
        count = self.shape.cgm_days * 86400 // STEP
        mean = rng.uniform(115, 170)
        glucose = mean
        at = self.end - count * STEP + rng.randrange(STEP)
        lines = []
        for number in range(count):
            at += STEP
            if number % 2880 == 2000:  # every 10 days, a 2-hour sensor warm-up
                continue
            hour = (at // 3600 + 1) % 24
            meal = 35 if hour in (8, 13, 19) else 0
            glucose += 0.08 * (mean + meal - glucose) + rng.gauss(0, 5)
            value = min(high, max(low, round(glucose)))
            client_id, fingerprint = self._ids(rng)
            received = stamp(at + 40)
            lines.append(template % {
                "patient": patient_id, "client_id": client_id, "value": value,
                "sent_value": value, "measured_at": stamp(at), "received_at": received,
                "evaluated_at": received, "fingerprint": fingerprint,
            })  # fmt: skip
        return lines

    def routine(self, patient_id: int, kind: str, rng: random.Random) -> list[str]:
        """The kind's daily measurements over the history's days, at about their hours."""
        days = self.shape.other_days
        first_day = self.end // 86400 - days
        systolic_mean = rng.uniform(118, 152)
        diastolic_mean = rng.uniform(70, 92)
        weight = rng.uniform(55, 125)
        glucose_mean = rng.uniform(100, 170)
        inr_mean = rng.uniform(2.0, 3.0)
        spo2_mean = rng.uniform(90, 97)
        medication = "warfarin-5mg"
        lines = []
        for day in range(first_day, first_day + days):
            for metric, hour in ROUTINES[kind][1]:
                if hour < 0:  # weekly
                    if day % 7:
                        continue
                    hour = 10
                at = day * 86400 + (hour - UTC_OFFSET_MINUTES // 60) * 3600
                at += rng.randrange(-1800, 2400)
                if at >= self.end or rng.random() < 0.05:  # a missed measurement
                    continue
                templates = self.templates
                if self.shape.manual_share and rng.random() < self.shape.manual_share:
                    templates = self.by_hand
                client_id, fingerprint = self._ids(rng)
                received = stamp(at + rng.randrange(5, 90))
                row = {
                    "patient": patient_id, "client_id": client_id, "measured_at": stamp(at),
                    "received_at": received, "evaluated_at": received,
                    "fingerprint": fingerprint,
                }  # fmt: skip
                if metric == "blood_pressure":
                    systolic = clip("systolic", round(rng.gauss(systolic_mean, 10)))
                    diastolic = clip("diastolic", round(rng.gauss(diastolic_mean, 7)))
                    diastolic = min(diastolic, systolic - 20)
                    lines.append(
                        templates[metric].text % (row | {"systolic": systolic,
                                                          "diastolic": diastolic})
                    )  # fmt: skip
                    pulse = clip("heart_rate", round(rng.gauss(72, 9)))
                    part_of = client_id
                    client_id, fingerprint = self._ids(rng)
                    row |= {"client_id": client_id, "fingerprint": fingerprint}
                    row |= {"value": pulse, "sent_value": pulse, "part_of": part_of}
                    lines.append(templates["pulse"].text % row)
                    continue
                if metric == "dose":
                    row |= {
                        "scheduled_for": stamp(day * 86400 + 7 * 3600),
                        "dose_status": "taken" if rng.random() < 0.9 else "skipped",
                        "medication": medication,
                    }
                    lines.append(templates[metric].text % row)
                    continue
                if metric == "glucose":
                    value = clip("glucose", round(rng.gauss(glucose_mean, 30)))
                    row["context"] = "fasting" if hour < 12 else "before_meal"
                elif metric == "weight":
                    weight = clip("weight", weight + rng.gauss(0, 0.25))
                    value = round(weight, 1)
                elif metric == "inr":
                    value = clip("inr", round(rng.gauss(inr_mean, 0.4), 1))
                elif metric == "spo2":
                    value = clip("spo2", round(rng.gauss(spo2_mean, 1.5)))
                elif metric == "temperature":
                    value = clip("temperature", round(rng.gauss(36.8, 0.3), 1))
                else:
                    value = clip("heart_rate", round(rng.gauss(74, 10)))
                row |= {"value": value, "sent_value": value}
                lines.append(templates[metric].text % row)
        return lines


def clip(name: str, value):
    low, high = RANGES[name]
    return min(high, max(low, value))


def ensure_partitions(conn, start: datetime, end: datetime) -> int:
    """A partitioned readings table gets a partition for every month of the history (a
    pluggable step): with the product's own partition maintenance (`monitoring.partitions.
    create_month_partition`) where it has one, else a monthly range partition wherever none
    covers the month. Returns the partitions created."""
    from psycopg import errors

    row = conn.execute(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON p.partrelid = c.oid "
        "WHERE c.relname = %s",
        [TABLE],
    ).fetchone()
    if row is None:
        return 0
    from django.db import connection

    try:
        from monitoring.partitions import create_month_partition
    except ImportError:
        create_month_partition = None
    if connection.settings_dict["NAME"] != conn.info.dbname:
        create_month_partition = None  # the product's function works on Django's database
    created = 0
    month = datetime(start.year, start.month, 1, tzinfo=UTC)
    while month <= end:
        following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        if create_month_partition is not None:
            created += bool(create_month_partition(month))
        else:
            try:
                with conn.transaction():
                    conn.execute(
                        f'CREATE TABLE "{TABLE}_scale_{month:%Y%m}" PARTITION OF {TABLE} '
                        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                    )
                created += 1
            except (errors.InvalidObjectDefinition, errors.DuplicateTable):
                pass  # covered already: an existing partition overlaps the month
        month = following
    return created


def key_model():
    """The model that keeps idempotency keys apart from the readings, if the schema has one:
    a monitoring model other than Reading with `patient` and `client_id`, named for a key."""
    from django.apps import apps

    from monitoring.models import Reading

    for model in apps.get_app_config("monitoring").get_models():
        names = {field.name for field in model._meta.concrete_fields}
        if (
            model is not Reading
            and {"patient", "client_id"} <= names
            and "key" in (model._meta.db_table)
        ):
            return model
    return None


def fill_key_table(conn, patient_ids: list[int]) -> str:
    """The generated readings' idempotency keys, from the readings: each key column is the
    reading column of the same name, or the reading's id for `reading_id` or a foreign key
    to Reading; a column with a default is left to it. Nothing to do without a key table."""
    from django.db import models

    from monitoring.models import Reading

    model = key_model()
    if model is None:
        return "no idempotency key table"
    reading_columns = {field.column for field in Reading._meta.concrete_fields}
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.column is None:
            continue  # a composite primary key: its fields are listed on their own
        if getattr(field, "related_model", None) is Reading or field.column == "reading_id":
            columns.append(field.column)
            values.append("r.id")
        elif field.column in reading_columns and field.column != "id":
            columns.append(field.column)
            values.append(f"r.{field.column}")
        elif not (field.has_default() or field.has_db_default() or field.null or field.auto_created
                  or isinstance(field, models.AutoField)):  # fmt: skip
            raise SystemExit(f"{model.__name__}.{field.name}: no value from the readings")
    table = model._meta.db_table
    began = time.monotonic()
    cursor = conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM {TABLE} r WHERE r.patient_id = ANY(%s) "
        # In key order: the key index is written left to right, dense (as the migration does).
        "ORDER BY r.patient_id, r.client_id ON CONFLICT DO NOTHING",
        [patient_ids],
    )
    return (
        f"{cursor.rowcount:,} keys into {table} ({', '.join(columns)}) in "
        f"{time.monotonic() - began:.1f} s"
    )


_GENERATOR: Generator | None = None  # set before the generating processes fork


def _patient_text(patient: dict) -> tuple[str, int]:
    lines = _GENERATOR.rows(patient, random.Random(SEED + patient["id"]))
    return "".join(lines), len(lines)


def generate_history(
    url: str, plan: dict, shape: Shape, end: int, chunk_rows: int, jobs: int
) -> dict:
    """COPY the history up to `end` (epoch s) into `url`, a transaction per ~chunk_rows rows;
    the text is made by `jobs` processes while this one sends it. Returns the stats."""
    global _GENERATOR
    fields = copy_fields()
    columns = ", ".join(field.column for field in fields)
    _GENERATOR = Generator(fields, end, shape)
    days = max(shape.cgm_days, shape.other_days) + 1
    rows = 0
    waited = 0.0  # for the generating processes: the text, not the database, was the limit
    began = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    with evaluate.pg(url) as conn, ctx.Pool(jobs) as pool:
        partitions = ensure_partitions(
            conn,
            datetime.fromtimestamp(end, UTC) - timedelta(days=days),
            datetime.fromtimestamp(end, UTC) + timedelta(days=40),
        )
        conn.autocommit = False
        texts = pool.imap(_patient_text, plan["patients"])
        done = 0
        while done < len(plan["patients"]):
            in_chunk = 0
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
                    while done < len(plan["patients"]) and in_chunk < chunk_rows:
                        started = time.perf_counter()
                        text, count = next(texts)
                        waited += time.perf_counter() - started
                        copy.write(text)
                        in_chunk += count
                        done += 1
                conn.commit()
            rows += in_chunk
            elapsed = time.monotonic() - began
            print(
                f"  {rows:,} rows, {done} of {len(plan['patients'])} patients, {elapsed:.0f} s "
                f"({rows / elapsed:,.0f} rows/s)",
                flush=True,
            )
        copy_seconds = time.monotonic() - began
        conn.autocommit = True
        keys = fill_key_table(conn, [p["id"] for p in plan["patients"]])
    return {
        "rows": rows,
        "seconds": copy_seconds,
        "waited": waited,
        "partitions": partitions,
        "keys": keys,
    }


def copy_window(url: str, plan: dict, shape: Shape, end: int, days: int) -> int:
    """The last `days` of the read and posting patients' history, the very rows the large
    database has, into the empty twin: the paths measured there return the same rows and
    evaluate the same windows, so the two differ only by the history beyond them."""
    if days <= 0:
        return 0
    fields = copy_fields()
    columns = ", ".join(field.column for field in fields)
    measured = [field.name for field in fields].index("measured_at")
    cutoff = stamp(end - days * 86400)
    generator = Generator(fields, end, shape)
    patients = plan["cgm_probes"] + plan["bp_probes"]
    rows = 0
    with evaluate.pg(url) as conn:
        ensure_partitions(
            conn,
            datetime.fromtimestamp(end, UTC) - timedelta(days=days + 1),
            datetime.fromtimestamp(end, UTC) + timedelta(days=40),
        )
        with conn.cursor() as cursor, cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
            for patient in patients:
                lines = generator.rows(patient, random.Random(SEED + patient["id"]))
                recent = [
                    line for line in lines if line.split("\t", measured + 1)[measured] >= cutoff
                ]
                copy.write("".join(recent))
                rows += len(recent)
        fill_key_table(conn, [p["id"] for p in patients])
    return rows


def open_alerts(plan: dict) -> int:
    """A few open alerts in the history: threshold crossings posted through the product's
    record_readings for some patients and evaluated in-process."""
    from django.utils import timezone

    from alerts.models import Alert
    from monitoring.evaluation import evaluate_pending_readings
    from monitoring.ingest import record_readings

    now = timezone.now() - timedelta(minutes=5)
    for patient in plan["alerted"]:
        metric, fields = evaluate.CROSSINGS["bp_high"]
        item = evaluate.make_item(metric, fields, now)
        record_readings(patient=patient_row(patient["id"]), items=[item])
        evaluate_pending_readings(patient_id=patient["id"])
    return Alert.objects.exclude(status="resolved").count()


# --- Measuring one database (in a subprocess of its own) ---------------------------------------


def request(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        payload = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        payload, status = repr(error).encode(), 0
    finally:
        conn.close()
    return status, (time.perf_counter() - started) * 1000, payload


@dataclass
class Result:
    name: str
    value: float | None  # ms (median), or readings/s for a rate
    unit: str = "ms"
    note: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit, "note": self.note}


def time_get(port: int, name: str, path: str, headers: dict, repeat: int) -> Result:
    """Median wall ms of GET path after one warm-up; a slow path (> 5 s) is timed once."""
    status, warm, payload = request(port, "GET", path, headers)
    if status == 404 and name == "panel":
        return Result(name, None, note="skipped: no panel (404)")
    samples = [] if warm < 5000 else [warm]
    statuses = {status}
    while len(samples) < (repeat if warm < 5000 else 2):
        status, ms, payload = request(port, "GET", path, headers)
        samples.append(ms)
        statuses.add(status)
    note = f"p50 of {len(samples)}, max {max(samples):.0f}"
    if statuses != {200}:
        note += f"; HTTP {sorted(statuses)}: {payload[:120]!r}"
    return Result(name, statistics.median(samples), note=note)


def measure_ingestion(port: int, plan: dict, args) -> Result:
    """500-item batches from the ingest patients over 4 connections, no worker: readings/s."""
    rates = []
    patients = plan["ingest"]
    for run in range(args.ingest_runs + 1):  # the first run warms up, untimed
        count = 200 if run == 0 else args.ingest_items
        rng = random.Random(SEED + 1000 * run)
        base = datetime.now(UTC) - timedelta(hours=3)
        per_patient = [[] for _ in patients]
        for number in range(count):
            index = number % len(patients)
            metric = evaluate.pick_metric(rng)
            fields = evaluate.normal_fields(metric, rng, index)
            moment = base + timedelta(seconds=number * 10800 / count)
            per_patient[index].append(evaluate.make_item(metric, fields, moment))
        requests = ingest.batch_requests(per_patient, [p["token"] for p in patients], 500)
        outcome = ingest.drive(port, requests, args.connections, deadline=600)
        if outcome["problems"] or set(outcome["statuses"]) != {201}:
            raise SystemExit(f"ingestion: {outcome['statuses']} {outcome['problems'][:3]}")
        if run:
            rates.append(count / outcome["seconds"])
    return Result(
        "ingestion: POST /readings, 500-item batches",
        statistics.median(rates),
        unit="readings/s",
        note=f"{args.ingest_items} items x {args.ingest_runs} runs, runs "
        + ", ".join(f"{r:,.0f}" for r in rates),
    )


def measure_latency(port: int, plan: dict, url: str, args) -> list[Result]:
    """Single-reading POSTs one at a time (a gap between them): POST → evaluated, and for
    threshold crossings POST → alert row, from NOTIFY triggers (evaluate.py's)."""
    rng = random.Random(SEED + 7)
    posts = []
    crossings = [(p, g) for p in plan["cgm_probes"] for g in ("glucose_high", "glucose_low")]
    crossings += [(p, "bp_high") for p in plan["bp_probes"]]
    every = max(1, args.latency_posts // (len(crossings) + 1))
    for number in range(args.latency_posts):
        cgm = number % 2 == 0
        group = plan["cgm_probes" if cgm else "bp_probes"]
        patient = group[number // 2 % len(group)]
        metric = "glucose" if cgm else "blood_pressure"
        fields = evaluate.normal_fields(metric, rng, number)
        crossing = None
        if number % every == every - 1 and crossings:
            patient, crossing = crossings.pop(0)
            metric, fields = evaluate.CROSSINGS[crossing]
        posts.append((patient, metric, fields, crossing))
    evaluated, alerted = {"glucose": [], "blood_pressure": []}, []
    with evaluate.pg(url) as conn:
        conn.execute(evaluate.TRIGGERS_SQL)
        conn.execute(f"LISTEN {evaluate.EVALUATED_CHANNEL}")
        conn.execute(f"LISTEN {evaluate.ALERT_CHANNEL}")
        try:
            for patient, metric, fields, crossing in posts:
                item = evaluate.make_item(metric, fields, datetime.now(UTC))
                body = json.dumps({"readings": [item]}).encode()
                headers = {
                    "Authorization": f"Bearer {patient['token']}",
                    "Content-Type": "application/json",
                }
                started = time.monotonic()
                status, _, payload = request(port, "POST", "/api/v1/readings", headers, body)
                if status != 201:
                    raise SystemExit(f"live post: {status} {payload[:200]!r}")
                seen = wait_for(conn, item["id"], crossing is not None, started)
                evaluated[metric].append(seen[0])
                if crossing:
                    alerted.append(seen[1])
                time.sleep(args.latency_gap)
        finally:
            conn.execute(evaluate.DROP_TRIGGERS_SQL)
    results = []
    for metric, values in evaluated.items():
        if values:
            p99 = evaluate.percentile(values, 0.99)
            results.append(Result(f"live {metric}: POST → evaluated p50", statistics.median(values),
                                  note=f"{len(values)} posts"))  # fmt: skip
            results.append(Result(f"live {metric}: POST → evaluated p99", p99))
    missing = sum(1 for value in alerted if value is None)
    found = [value for value in alerted if value is not None]
    if found:
        results.append(Result("live: POST → alert row p50", statistics.median(found),
                              note=f"{len(found)} crossings, max {max(found):.0f}"
                              + (f"; {missing} raised no alert" if missing else "")))  # fmt: skip
    return results


def wait_for(conn, client_id: str, alert: bool, started: float) -> tuple[float, float | None]:
    """ms from `started` to the reading's evaluation (and its alert) being committed."""
    evaluated_ms = alert_ms = None
    alert_payloads: list[tuple[str, float]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The generator holds the connection: collect, then query after it has returned.
        for notify in conn.notifies(timeout=0.05, stop_after=1):
            at = (time.monotonic() - started) * 1000
            if notify.channel == evaluate.EVALUATED_CHANNEL and notify.payload == client_id:
                evaluated_ms = at
            elif notify.channel == evaluate.ALERT_CHANNEL:
                alert_payloads.append((notify.payload, at))
        if alert and alert_payloads and alert_ms is None:
            (reading_id,) = conn.execute(
                f"SELECT id FROM {TABLE} WHERE client_id = %s", [client_id]
            ).fetchone() or (None,)
            for payload, at in alert_payloads:
                if reading_id in json.loads(payload.split(" ", 1)[1]):
                    alert_ms = at
            alert_payloads.clear()
        if evaluated_ms is not None and (not alert or alert_ms is not None):
            break
        if evaluated_ms is not None and time.monotonic() - started > 5:
            break  # the crossing raised no alert: reported, not waited for
    if evaluated_ms is None:
        raise SystemExit(f"reading {client_id} was not evaluated within 30 s")
    return evaluated_ms, alert_ms


def measure_reads(port: int, plan: dict, args) -> list[Result]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from alerts.models import Alert
    from monitoring.auth import issue_staff_token

    nurse = get_user_model().objects.get(username=plan["nurse"])
    token = issue_staff_token(user=nurse)[1]
    client = Client()
    client.force_login(nurse)
    api = {"Authorization": f"Bearer {token}"}
    admin = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    cgm = plan["cgm_probes"][0]["id"]
    bp = plan["bp_probes"][0]["id"]
    alert = Alert.objects.filter(patient_id=cgm).exclude(status="resolved").order_by("-id").first()
    readings = f"/api/v1/patients/{cgm}/readings"
    # Pages of 10 here: the empty database's patient has a second page too (the live posts).
    _, _, first = request(port, "GET", f"{readings}?page_size=10", api)
    next_url = json.loads(first).get("next") if first.startswith(b"{") else None
    paths = [
        ("API readings, default page (CGM patient)", readings, api),
        ("API readings, ?type=glucose", f"{readings}?type=glucose", api),
        ("API readings, second page of 10 (next)",
         urlsplit(next_url)._replace(scheme="", netloc="").geturl() if next_url else None, api),
        ("API readings, default page (BP patient)", f"/api/v1/patients/{bp}/readings", api),
        ("admin readings changelist (nurse's team)", "/admin/monitoring/reading/", admin),
        ("admin readings, one patient",
         f"/admin/monitoring/reading/?patient__id__exact={cgm}", admin),
        ("admin patient page (CGM patient)", f"/admin/monitoring/patient/{cgm}/change/", admin),
        ("admin alert page", f"/admin/alerts/alert/{alert.pk}/change/" if alert else None,
         admin),
        ("admin triage queue (open alerts)", "/admin/alerts/alert/", admin),
        ("panel", "/api/v1/panel", api),
    ]  # fmt: skip
    results = []
    for name, path, headers in paths:
        if path is None:
            results.append(Result(name, None, note="skipped: nothing to open"))
            continue
        results.append(time_get(port, name, path, headers, args.repeat))
        print(f"    {name}: {results[-1].value} ms", flush=True)
    return results


def measure_summaries(plan: dict, repeat: int) -> Result:
    """The scheduled cgm_summary rules of one CGM patient, in-process (the task's body)."""
    from monitoring.evaluation import evaluate_scheduled_rules
    from monitoring.models import Rule

    patient_id = plan["cgm_probes"][-1]["id"]
    rule_ids = list(
        Rule.objects.filter(patient_id=patient_id, kind="cgm_summary").values_list("id", flat=True)
    )
    if not rule_ids:
        return Result("CGM summaries task, one patient", None, note="skipped: no cgm rules")
    samples = []
    for run in range(repeat + 1):
        started = time.perf_counter()
        evaluate_scheduled_rules(patient_id=patient_id, rule_ids=rule_ids)
        if run:
            samples.append((time.perf_counter() - started) * 1000)
    return Result(
        "CGM summaries task, one patient",
        statistics.median(samples),
        note=f"{len(rule_ids)} rules, p50 of {len(samples)}",
    )


def measure(args) -> None:
    """The measurement of one database (--measure URL): results as JSON in --out."""
    plan = json.loads(Path(args.plan).read_text())
    args.database_url = args.measure
    evaluate.configure_environment(args)
    os.environ["VIGIL_REQUIRE_2FA"] = "0"
    import django

    django.setup()
    from django.db import connections

    from alerts.models import Alert

    env = dict(os.environ)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vigil-scale-") as logdir:
        procs = evaluate.Subprocesses(Path(logdir))
        try:
            port, _web = evaluate.start_gunicorn(procs, env, workers=2)
            worker = evaluate.start_worker(procs, env, "scale")
            # An earlier round's alerts of the posting patients would absorb this round's
            # crossings (no new alert row to time): they go, with their events.
            Alert.objects.filter(
                patient_id__in=[p["id"] for p in plan["cgm_probes"] + plan["bp_probes"]]
            ).delete()
            connections.close_all()
            results += measure_latency(port, plan, args.measure, args)
            print(f"    live: {[round(r.value or 0, 1) for r in results]}", flush=True)
            procs.stop(worker.process)
            results += measure_reads(port, plan, args)
            results.append(measure_summaries(plan, args.repeat))
            # Last, so the reads above found the empty database empty: it adds readings.
            connections.close_all()  # ingest.drive forks its clients
            results.insert(0, measure_ingestion(port, plan, args))
            print(f"    ingestion: {results[0].value:,.0f} readings/s", flush=True)
            with evaluate.pg(args.measure) as conn:  # no backlog left for a --reuse run
                conn.execute(
                    f"UPDATE {TABLE} SET evaluated_at = now() "
                    "WHERE evaluated_at IS NULL AND patient_id = ANY(%s)",
                    [[p["id"] for p in plan["ingest"]]],
                )
        finally:
            procs.stop_all()
            evaluate.flush_broker(args.broker_url)
    Path(args.out).write_text(json.dumps([r.as_dict() for r in results]))


# --- The run ----------------------------------------------------------------------------------


def combine(runs: list[list[dict]]) -> list[dict]:
    """Per path, the median of the rounds' values (each a median itself)."""
    combined = []
    for row in runs[0]:
        values = [r["value"] for run in runs for r in run if r["name"] == row["name"]]
        values = [v for v in values if v is not None]
        note = (
            f"rounds {', '.join(f'{v:,.0f}' for v in values)}"
            if len(runs) > 1 and values
            else row["note"]
        )
        combined.append(
            row | {"value": statistics.median(values) if values else None, "note": note}
        )
    return combined


def print_table(large: list[dict], empty: list[dict]) -> list[str]:
    by_name = {row["name"]: row for row in empty}
    header = f"{'path':<48} {'large':>10} {'empty':>10} {'ratio':>7}  note (large)"
    print()
    print(header)
    print("-" * len(header))
    flagged = []
    for row in large:
        other = by_name.get(row["name"], {})
        a, b = row["value"], other.get("value")
        if a is None or b is None:
            print(f"{row['name']:<48} {'—':>10} {'—':>10} {'':>7}  {row['note']}")
            continue
        rate = row["unit"] == "readings/s"
        ratio = b / a if rate else a / b  # > 1: the large database is slower
        flag = ratio > FLAG
        if flag:
            flagged.append(row["name"])
        fmt = ",.0f" if rate else ".1f"
        print(
            f"{row['name']:<48} {a:>10{fmt}} {b:>10{fmt}} {ratio:>6.2f}x{'!' if flag else ' '} "
            f"{row['note']}"
        )
    print(f"(ms unless readings/s; ratio = large cost / empty cost; ! = over {FLAG}x)")
    return flagged


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, help="history size (20,000,000)")
    parser.add_argument("--small", action="store_true", help="~200,000 readings, quick")
    parser.add_argument("--patients", type=int, help="patients (readings / 4,000, min 60)")
    parser.add_argument("--cgm-share", type=float, default=0.1, help="share wearing a CGM")
    parser.add_argument("--cgm-days", type=int, default=90, help="days of CGM per wearer")
    parser.add_argument("--teams", type=int, default=3, help="care teams (the nurse: team 0)")
    parser.add_argument(
        "--window-days",
        type=int,
        default=14,
        help="days of the read patients' recent history the empty twin gets too (0: none)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes making the COPY text")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per COPY")
    parser.add_argument("--server-url", default=os.environ.get("SCALE_SERVER_URL",
                                                                DEFAULT_SERVER_URL))  # fmt: skip
    parser.add_argument("--database-prefix", default=DATABASE_PREFIX)
    parser.add_argument("--broker-url", default=os.environ.get("SCALE_BROKER_URL",
                                                                DEFAULT_BROKER_URL))  # fmt: skip
    parser.add_argument("--plan", default=str(DEFAULT_PLAN), help="the population, as JSON")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the databases of an earlier run again"
    )
    parser.add_argument("--repeat", type=int, default=10, help="timed GETs per path")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measurements of each database, alternately"
    )
    parser.add_argument("--ingest-items", type=int, help="items per ingestion run (20,000)")
    parser.add_argument("--ingest-runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4, help="ingestion clients")
    parser.add_argument("--latency-posts", type=int, default=200)
    parser.add_argument("--latency-gap", type=float, default=0.05, help="s between posts")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a database URL: the child
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.readings = args.readings or (200_000 if args.small else 20_000_000)
    args.ingest_items = args.ingest_items or (4_000 if args.small else 20_000)
    if not args.database_prefix.startswith(DATABASE_PREFIX):
        parser.error(f"--database-prefix must start {DATABASE_PREFIX}")
    evaluate.check_broker_url(args.broker_url)
    return args


def child_arguments(args, url: str, out: Path) -> list[str]:
    return [
        sys.executable, str(Path(__file__).resolve()), "--measure", url, "--out", str(out),
        "--plan", args.plan, "--broker-url", args.broker_url, "--repeat", str(args.repeat),
        "--ingest-items", str(args.ingest_items), "--ingest-runs", str(args.ingest_runs),
        "--connections", str(args.connections), "--latency-posts", str(args.latency_posts),
        "--latency-gap", str(args.latency_gap),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if args.measure:
        measure(args)
        return 0
    began = time.monotonic()
    load = os.getloadavg()[0]
    large_url = database_url(args.server_url, f"{args.database_prefix}_large")
    empty_url = database_url(args.server_url, f"{args.database_prefix}_empty")
    args.database_url = large_url
    evaluate.configure_environment(args)
    stats: dict = {}
    if not args.reuse:
        import django

        print(f"load average {load:.2f}; re-creating {large_url} …")
        ingest.setup_database(large_url, prefix=DATABASE_PREFIX)
        evaluate.flush_broker(args.broker_url)
        django.setup()
        from django.core.management import call_command
        from django.db import connections

        check_plausible()
        call_command("migrate", verbosity=0, interactive=False)
        shape = shape_for(args)
        started = time.monotonic()
        plan = enrol(shape, args.teams, tokens_for=8)
        plan["shape"] = shape.__dict__
        Path(args.plan).write_text(json.dumps(plan))
        stats["enrol"] = time.monotonic() - started
        print(
            f"enrolled {shape.patients} patients ({shape.cgm_patients} CGM) in "
            f"{stats['enrol']:.0f} s; history: {shape.cgm_days} days of CGM, "
            f"{shape.other_days} days of routines, ~{shape.expected_rows():,} readings"
        )
        connections.close_all()
        clone_database(large_url, f"{args.database_prefix}_empty")
        print("generating the history (COPY) …")
        end = int(time.time()) // 60 * 60 - 600  # ten minutes ago, on the minute
        stats["copy"] = generate_history(large_url, plan, shape, end, args.chunk_rows, args.jobs)
        stats["window"] = copy_window(empty_url, plan, shape, end, args.window_days)
        stats["alerts"] = open_alerts(plan)
        connections.close_all()
        evaluate.flush_broker(args.broker_url)
        stats["vacuum"] = vacuum_analyze(large_url) + vacuum_analyze(empty_url)
    if args.rounds == 0:  # generate now, measure later with --reuse (e.g. on other code)
        print(f"generated in {time.monotonic() - began:.0f} s; measure with --reuse")
        return 0
    plan = json.loads(Path(args.plan).read_text())
    rounds: dict[str, list[list[dict]]] = {"empty": [], "large": []}
    with tempfile.TemporaryDirectory(prefix="vigil-scale-") as folder:
        for number in range(args.rounds):  # alternately, so a busy spell hits both
            for label, url in (("empty", empty_url), ("large", large_url)):
                print(f"measuring {label} (round {number + 1} of {args.rounds}) …")
                out = Path(folder) / f"{label}.json"
                subprocess.run(child_arguments(args, url, out), cwd=ROOT, check=True)
                rounds[label].append(json.loads(out.read_text()))
    results = {label: combine(runs) for label, runs in rounds.items()}
    print()
    shape = plan["shape"]
    print(
        f"Scale benchmark — {len(plan['patients'])} patients ({shape['cgm_patients']} CGM, "
        f"{shape['cgm_days']} days; others {shape['other_days']} days), {os.cpu_count()} CPUs, "
        f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}"
    )
    if "copy" in stats:
        copied = stats["copy"]
        rate = copied["rows"] / copied["seconds"]
        print(
            f"history: {copied['rows']:,} readings by COPY in {copied['seconds']:.0f} s "
            f"({rate:,.0f} rows/s; {args.jobs} processes making the text, waited for "
            f"{copied['waited']:.0f} s); {copied['keys']}; partitions created "
            f"{copied['partitions']}; {stats['alerts']} open alerts"
        )
        print(
            f"empty twin: the last {args.window_days} days of the read patients, "
            f"{stats['window']:,} readings; enrolment {stats['enrol']:.0f} s; "
            f"VACUUM ANALYZE {stats['vacuum']:.0f} s"
        )
    print(
        f"database size: large {database_size(large_url) / 2**30:.2f} GiB, empty "
        f"{database_size(empty_url) / 2**20:.0f} MiB"
    )
    flagged = print_table(results["large"], results["empty"])
    print(f"total {time.monotonic() - began:.0f} s")
    if flagged:
        print(f"over {FLAG}x: {'; '.join(flagged)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
