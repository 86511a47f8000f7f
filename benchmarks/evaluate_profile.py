"""Where evaluation time goes: cProfile of evaluate_pending_readings, in-process.

    .venv/bin/python benchmarks/evaluate_profile.py [--shape backlog|single|cgm|crossing]

Runs against the database `benchmarks/evaluate.py` left behind (vigil_bench_eval; run that
first, `--quick` is enough): enrols fresh patients on all five protocols, stores readings
with `record_readings` (the evaluation it would enqueue is not published), then profiles
`evaluate_pending_readings` for each patient. `backlog`: 100 readings per patient, as in the
batch phase; `single`: one reading per patient per evaluation, as a CGM posting live (the
latency phase's shape); `cgm`: like `single`, glucose only, for patients who already have
48 h of CGM readings (one every 5 minutes, 576, evaluated), as a CGM wearer has in steady
state; `crossing`: like `cgm`, but the live reading is a low glucose that opens a new alert
(the latency phase's threshold crossings). Prints wall time per reading, queries per
evaluation, and the top functions by cumulative and by own time (`--no-profile`: the timing
alone, without cProfile's overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from benchmarks.evaluate import (  # noqa: E402
    CROSSINGS,
    PROTOCOLS,
    backlog_items,
    in_process_environment,
    make_item,
    normal_fields,
    pick_metric,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--shape", choices=["backlog", "single", "cgm", "crossing"], default="backlog"
    )
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--readings", type=int, default=100, help="per patient")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--queries", action="store_true", help="also: each query's mean execute time"
    )
    args = parser.parse_args()
    in_process_environment(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
    import django

    django.setup()
    from datetime import timedelta

    from django.db import connection, reset_queries
    from django.utils import timezone

    from alerts.models import CareTeam
    from monitoring.enrolment import enrol_patient
    from monitoring.evaluation import evaluate_pending_readings
    from monitoring.ingest import record_readings

    team = CareTeam.objects.order_by("id").first()
    stamp = int(time.time())
    patients = [
        enrol_patient(
            external_id=f"PROFILE-{stamp}-{index}",
            name="Profiled patient",
            timezone="Europe/Amsterdam",
            care_team=team,
            protocols=PROTOCOLS,
        )
        for index in range(args.patients)
    ]
    profile = cProfile.Profile(time.process_time)
    evaluated = queries = evaluations = 0
    per_query: dict[str, list[float]] = {}

    def timed(execute, sql, params, many, context):
        """Round trip of each statement (psycopg's client-side cursor has the rows then)."""
        if not args.queries:
            return execute(sql, params, many, context)
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = re.sub(r"\b\d+\b|\"s\d+_x\d+\"|'[^']*'|%s", "?", sql)[:110]
            per_query.setdefault(shape, []).append(time.perf_counter() - began)

    elapsed = 0.0
    connection.force_debug_cursor = True  # count queries
    # Nothing leaves the process: the evaluations this would enqueue are not published.
    with (
        mock.patch("monitoring.ingest.store.enqueue_coalesced_on_commit"),
        mock.patch("monitoring.evaluation.readings.route_after_commit"),
    ):
        if args.shape == "backlog":
            now = timezone.now()
            for index, patient in enumerate(patients):
                items, _ = backlog_items(index, args.readings, 2, now)
                record_readings(patient=patient, items=items)
            rounds = [[patient] for patient in patients]
        else:
            rng = random.Random(1)
            rounds = [[patient] * args.readings for patient in patients]
        if args.shape == "crossing":
            rounds = [[patient] for patient in patients]  # one alert each: a new one
        if args.shape in ("cgm", "crossing"):
            start = timezone.now() - timedelta(hours=48)
            for patient in patients:
                history = [
                    make_item(
                        "glucose",
                        {"value": rng.randint(85, 165), "unit": "mg/dL"},
                        start + timedelta(minutes=5 * number),
                    )
                    for number in range(576)
                ]
                for first in range(0, len(history), 500):
                    record_readings(patient=patient, items=history[first : first + 500])
                evaluate_pending_readings(patient_id=patient.pk)
        for index, batch in enumerate(rounds):
            for patient in batch:
                if args.shape != "backlog":
                    metric = "glucose" if args.shape in ("cgm", "crossing") else pick_metric(rng)
                    fields = normal_fields(metric, rng, index)
                    if args.shape == "crossing":
                        fields = CROSSINGS["glucose_low"][1]
                    item = make_item(metric, fields, timezone.now())
                    record_readings(patient=patient, items=[item])
                reset_queries()
                started = time.perf_counter()
                if not args.no_profile:
                    profile.enable()
                with connection.execute_wrapper(timed):
                    evaluated += evaluate_pending_readings(patient_id=patient.pk)
                profile.disable()
                elapsed += time.perf_counter() - started
                queries += len(connection.queries)
                evaluations += 1
    how = "" if args.no_profile else " under the profiler"
    print(
        f"{args.shape}: {evaluated} readings in {evaluations} evaluations, "
        f"{elapsed:.2f} s{how} ({evaluated / elapsed:.0f} readings/s, "
        f"{elapsed / evaluations * 1000:.1f} ms and {queries / evaluations:.1f} queries "
        f"per evaluation)"
    )
    if args.queries:
        print("\nper evaluation: calls, mean execute ms, query (numbers and strings as ?)")
        for shape, times in sorted(per_query.items(), key=lambda pair: -sum(pair[1])):
            mean = sum(times) / len(times) * 1000
            print(f"{len(times) / evaluations:5.2f} {mean:7.3f}  {shape}")
    if args.no_profile:
        return
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
