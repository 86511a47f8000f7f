"""Evaluation of every patient with new readings, many patients per task when the queue is
busy, one at once when it is not.

Ingest does not publish a task per upload: it adds the patient to the evaluation wake-up set
(config.celery.enqueue_coalesced_on_commit) and publishes a message only when none is on its
way. The task taking that message evaluates its patient, then every patient that joined the
set meanwhile, and takes the set again until it is empty or the run's budget is spent; what
is left is handed on to a new message. On an idle system that is one message per upload, as
before; at 100 uploads/s it is a message per handful of uploads, and the per-task cost
(Celery, the broker round trips) is shared.

Each patient is evaluated as evaluate_pending_readings evaluates it: under the patient's
advisory lock, in measured order, alerts and evaluated_at in one transaction; patients that
wait together are evaluated together (evaluate_patients_together: one transaction and one
statement per kind of row for up to PATIENTS_TOGETHER of them, each deciding what it would
alone). Two drains, or a
drain and the sweep's per-patient task, on one patient serialise on that lock and the second
finds nothing more to do. The database is still the outbox: a patient whose wake-up was lost
(a Redis restart, a worker killed mid-run) is found by the sweep.
"""

from __future__ import annotations

import time

from django.conf import settings

from config.celery import give_back_coalesced, take_coalesced, wait_coalesced
from monitoring.evaluation.readings import evaluate_patients_together

DRAIN_TASK = "monitoring.tasks.drain_pending_readings_task"
# One run stops taking patients after this long (seconds) and hands the rest on: a burst
# does not make one task run into its time limit, and other tasks on the queue get a turn.
DRAIN_BUDGET_SECONDS = 2.0
# Patients evaluated in one transaction when several wait (evaluate_patients_together): the
# shared statements are paid once per group, and a group's commit, which makes its results
# visible, waits for all of them (16 live readings: ~15–30 ms).
PATIENTS_TOGETHER = 16


def drain_pending_readings(
    *,
    patient_id: int | None = None,
    budget: float = DRAIN_BUDGET_SECONDS,
    linger: float | None = None,
) -> int:
    """Evaluate the pending readings of `patient_id` and of every patient waiting in the
    evaluation wake-up set, taking the set again until it is empty or `budget` seconds have
    passed; returns how many readings were evaluated.

    While it runs it stays awake (take_coalesced(keep_awake=True)): uploads meanwhile add
    their patient to the set and ring a bell instead of publishing a message, and when the
    set is empty the run waits up to `linger` seconds (VIGIL_DRAIN_LINGER_SECONDS) for the
    bell before it lets go of the wake-up flag. Under a steady stream of single-reading
    uploads one message then serves the whole budget, instead of a message (a publish on the
    web, a task on the worker) per upload: those were a third of the CPU of a live reading
    (benchmarks/README.md, "Cost per live reading"). A new upload rings the bell at once, so
    waiting adds no latency; an idle system still sees one message per upload.

    Writes: what evaluate_pending_readings writes. Enqueues: a drain message for patients
    taken but not evaluated (the budget ran out, or an evaluation raised: the error is
    raised again for the task's retry)."""
    if linger is None:
        linger = settings.VIGIL_DRAIN_LINGER_SECONDS
    deadline = time.monotonic() + budget
    todo = take_coalesced(DRAIN_TASK, keep_awake=True)
    if patient_id is not None:
        todo.add(patient_id)
    awake = True
    evaluated = 0
    while True:
        done, left = _evaluate_each(todo, deadline)
        evaluated += done
        if left is not None:  # out of time: hand the rest (and the flag) on
            give_back_coalesced(DRAIN_TASK, left | take_coalesced(DRAIN_TASK))
            return evaluated
        if awake:
            # An upload since the last take has rung the bell (a take silences it with the
            # same command), so the wait returns at once when there is more to do.
            if wait_coalesced(DRAIN_TASK, min(linger, deadline - time.monotonic())):
                todo = take_coalesced(DRAIN_TASK, keep_awake=True)
                continue
            # Let go of the flag, taking what came in just before: an upload after this
            # publishes a message of its own.
            awake = False
        todo = take_coalesced(DRAIN_TASK)
        if not todo:
            return evaluated


def _evaluate_each(todo: set[int], deadline: float) -> tuple[int, set[int] | None]:
    """Evaluate each patient, in id order, up to PATIENTS_TOGETHER of them in one
    transaction; (readings evaluated, the patients left when the deadline passed, or None).
    An evaluation that raises hands the patients after the first of its group on (with the
    flag) and raises again."""
    evaluated = 0
    ordered = sorted(todo)
    for start in range(0, len(ordered), PATIENTS_TOGETHER):
        if time.monotonic() >= deadline:
            return evaluated, set(ordered[start:])
        try:
            evaluated += evaluate_patients_together(
                patient_ids=ordered[start : start + PATIENTS_TOGETHER]
            )
        except BaseException:
            give_back_coalesced(DRAIN_TASK, set(ordered[start + 1 :]) | take_coalesced(DRAIN_TASK))
            raise
    return evaluated, None
