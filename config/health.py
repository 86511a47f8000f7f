"""GET /healthz: 200 when the database and the broker answer, 503 with which one did not.

"degraded" (still 200: restarting the service mends nothing, and taking it out of rotation
would stop readings arriving) while readings wait for evaluation longer than the grace, or
failed it, or an alert event's routing is two sweeps overdue: alerts or pages may be missing,
and an operator must look (the admin's reading list filters and retries failed readings)."""

import logging

from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.models import ChannelFault
from alerts.notify import overdue_routings
from config.celery import app as celery_app
from monitoring.evaluation.failures import evaluation_backlog

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("health check: database unreachable")
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            # One try: a retry pauses seconds, and a probe of a hung broker must answer in
            # about the broker's socket timeout (tests/test_broker_faults.py).
            conn.ensure_connection(max_retries=0, timeout=2)
        return True
    except Exception as error:
        # One line, no traceback: a probe every few seconds during an outage.
        logger.warning("health check: broker unreachable (%s)", type(error).__name__)
        return False


@require_GET
def healthz(request) -> JsonResponse:
    checks = {
        "database": "ok" if _database_ok() else "unreachable",
        "broker": "ok" if _broker_ok() else "unreachable",
    }
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unhealthy", **checks}
    if checks["database"] == "ok":
        # Delivery targets that failed permanently need an operator, not a restart: shown,
        # without turning the service unhealthy.
        body["channel_faults"] = ChannelFault.objects.filter(cleared_at__isnull=True).count()
        backlog = evaluation_backlog(now=timezone.now())
        body["overdue_evaluations"] = backlog.overdue
        body["failed_evaluations"] = backlog.failed
        # Pages that should have gone out and have not: nobody may have heard of an alert.
        body["overdue_routings"] = overdue_routings(now=timezone.now())
        if healthy and not (backlog.healthy and not body["overdue_routings"]):
            body["status"] = "degraded"
    return JsonResponse(body, status=200 if healthy else 503)
