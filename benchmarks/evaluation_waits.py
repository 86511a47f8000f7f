"""What a live evaluation's round trips and re-planning cost, variants side by side in one run.

    .venv/bin/python benchmarks/evaluation_waits.py [--evaluations 300] [--rounds 6] [--gaps 0,10]

In-process, no worker: single glucose readings are stored with the product's ingest (as the
web stores them, not measured), then each is evaluated with `evaluate_pending_readings`, as
the drain evaluates a live reading, after an idle gap (at 100 readings/s the drain and its
PostgreSQL backend sleep ~10 ms between readings). Measured per evaluation: this process's
CPU, its PostgreSQL backend's CPU (/proc/<pid>/stat of pg_backend_pid(); clock ticks, so
only averages over many evaluations mean anything) and the wall time. Variants, alternated
in blocks of `--evaluations` (every other round in the opposite order) so that the
machine's drift falls on each alike:

  product          as shipped: statements that need no answer of each other sent together
                   (config.statements.sent_together: 4 round trips per live reading)) and
                   generic plans (plan_cache_mode=force_generic_plan, config/settings.py)
  one by one       each statement sent after the previous one's answer (8 round trips):
                   sent_together replaced by an empty block
  planned anew     sent together, but PostgreSQL left to choose its plans (plan_cache_mode
                   auto): it plans the ANY(array) statements and the partitioned update
                   again at every reading

Runs against the database `benchmarks/evaluate.py` left behind (vigil_bench_eval; run that
first, `--quick` is enough): issues app tokens for its CGM patients and adds readings to them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from benchmarks.evaluate import in_process_environment  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluations", type=int, default=300, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--gaps", default="0,10", help="idle milliseconds before each")
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()
    in_process_environment()
    import django

    django.setup()
    from django.db import connection

    from monitoring.evaluation import evaluate_pending_readings
    from monitoring.evaluation import readings as evaluation
    from monitoring.ingest import record_readings
    from monitoring.models import Patient, Reading

    glucose_patients = (
        Reading.objects.filter(metric="glucose").order_by().values("patient_id").distinct()
    )
    patients = list(Patient.objects.filter(pk__in=glucose_patients).order_by("id"))
    patients = patients[: args.patients]
    if not patients:
        raise SystemExit("no CGM patients: run benchmarks/evaluate.py first (--quick is enough)")

    @contextlib.contextmanager
    def one_by_one():
        yield

    together = evaluation.sent_together
    variants = {
        "product": (together, "force_generic_plan"),
        "one by one": (one_by_one, "force_generic_plan"),
        "planned anew": (together, "auto"),
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    def backend_cpu() -> float:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    clock = [datetime.now(UTC) - timedelta(hours=2)]

    def store(patient, number: int) -> None:
        clock[0] += timedelta(seconds=1)
        value = 45 if number % 30 == 0 else 112  # now and then a low that opens an alert
        item = {
            "id": f"{time.time_ns():032x}"[-32:],
            "type": "glucose",
            "value": value,
            "unit": "mg/dL",
            "measured_at": clock[0].isoformat(),
        }
        record_readings(patient=patient, items=[item])

    totals = {(name, gap): [0.0, 0.0, 0.0, 0] for name in variants for gap in args.gaps.split(",")}
    for number in range(50):  # warm: compiled statements, prepared statements, caches
        patient = patients[number % len(patients)]
        store(patient, number + 1)
        evaluate_pending_readings(patient_id=patient.pk)
    number = 0
    for round_number in range(args.rounds):
        # Every other round in the opposite order: none always runs first after a change.
        order = list(variants.items())[:: 1 if round_number % 2 == 0 else -1]
        for gap in args.gaps.split(","):
            for name, (sending, plans) in order:
                evaluation.sent_together = sending
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('plan_cache_mode', %s, false)", [plans])
                total = totals[(name, gap)]
                for _ in range(args.evaluations):
                    number += 1
                    patient = patients[number % len(patients)]
                    store(patient, number)
                    time.sleep(float(gap) / 1000)
                    cpu, pg, wall = time.process_time(), backend_cpu(), time.perf_counter()
                    evaluate_pending_readings(patient_id=patient.pk)
                    total[0] += time.process_time() - cpu
                    total[1] += backend_cpu() - pg
                    total[2] += time.perf_counter() - wall
                    total[3] += 1
    evaluation.sent_together = together
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print(
        f"{'gap':>6}  {'variant':<14} {'evaluations':>11}  {'process CPU':>11}  "
        f"{'PostgreSQL CPU':>14}  {'both':>8}  {'wall':>8}  {'both vs product':>15}"
    )
    for gap in args.gaps.split(","):
        base = totals[("product", gap)]
        base_both = (base[0] + base[1]) / base[3]
        for name in variants:
            cpu, pg, wall, count = totals[(name, gap)]
            both = (cpu + pg) / count
            print(
                f"{gap:>3} ms  {name:<14} {count:>11}  {cpu / count * 1000:>8.3f} ms  "
                f"{pg / count * 1000:>11.3f} ms  {both * 1000:>5.3f} ms  "
                f"{wall / count * 1000:>5.3f} ms  {both / base_both:>14.2f}×"
            )


if __name__ == "__main__":
    main()
