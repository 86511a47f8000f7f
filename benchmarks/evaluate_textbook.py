"""The textbook evaluation task the batch path is measured against: benchmark code only.

One task per reading, written the way a tutorial writes it: load the reading, load the
patient's active rules for its metric, load the history the rules need, run the product's
rule kinds on that one reading, write the alerts, mark the reading evaluated. It shares the
product's rule kinds and alert lifecycle (`apply_outcomes`, so both paths raise, fold, inhibit
and clear alerts the same way and their alerts can be compared); what it does not share is
the per-patient batch: every reading pays for its own task, queries and transaction.

`benchmarks/evaluate.py` runs it in a real worker with `-I benchmarks.evaluate_textbook`,
with `CELERY_DB_REUSE_MAX=0` (the fixup then reconnects to PostgreSQL for every task, as
Celery does by default) and, for comparison, with the product's connection reuse.
"""

from __future__ import annotations

from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from monitoring.evaluation import apply_outcomes, unit_of
from monitoring.models import Reading, Rule
from monitoring.rules import ON_READING, kind_of
from monitoring.rules.base import Context


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def evaluate_reading_task(reading_id: int) -> int:
    now = timezone.now()
    reading = Reading.objects.select_related("patient__care_team").get(pk=reading_id)
    if reading.evaluated_at is not None:
        return 0
    patient = reading.patient
    rules = [
        rule
        for rule in Rule.objects.filter(patient=patient, metric=reading.metric, active=True)
        if kind_of(rule).runs(ON_READING)
    ]
    fresh = reading.measured_at >= now - settings.VIGIL_STALE_READING_AGE
    with transaction.atomic():
        outcomes = []
        if rules:
            lookback = max(kind_of(rule).lookback(rule.parameters) for rule in rules)
            history = list(
                Reading.objects.filter(
                    patient=patient,
                    metric=reading.metric,
                    measured_at__gte=reading.measured_at - lookback,
                ).order_by("measured_at", "id")
            )
        for rule in rules:
            kind = kind_of(rule)
            suppress = kind.about_single_readings
            context = Context(
                now=now,
                zone=patient.zone,
                unit=unit_of(reading.metric),
                new=[reading] if fresh or not suppress else [],
                history=history,
            )
            outcomes.append((rule, kind.evaluate(rule, context)))
            if kind.moved_check is not None:  # a deadline by the clock that readings move
                deadline = kind.next_check(rule.parameters, reading.measured_at, now)
                Rule.objects.filter(pk=rule.pk).update(next_check_at=deadline)
        raised = apply_outcomes(patient=patient, outcomes=outcomes, now=now)
        reading.evaluated_at = now
        reading.save(update_fields=["evaluated_at"])
        _route_after_commit(raised)
    return 1


def _route_after_commit(raised) -> None:
    from alerts.tasks import route_alert_event_task

    for item in raised:
        if item.notify and item.event is not None:
            transaction.on_commit(partial(route_alert_event_task.delay, item.event.pk), robust=True)
