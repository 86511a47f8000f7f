"""The periodic recomputation of the ledger (program/tasks.py, recompute_ledger_task)."""

from datetime import UTC, date, datetime

import pytest
from django.conf import settings

from config.celery import app
from program.models import LedgerLine
from program.tasks import recompute_ledger_task
from tests.program.ledger_helpers import days, episode, local, post_device_days, time_entry


@pytest.mark.django_db
def test_the_task_recomputes_the_previous_and_the_current_month(patient, time_machine):
    # given: an episode from 1 March with 3 days and a 12-minute call in March
    episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 2), 3))
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)
    time_machine.move_to(datetime(2026, 4, 2, 12, 0, tzinfo=UTC), tick=False)

    # when: it runs on 2 April, twice
    first = recompute_ledger_task()
    stored = list(LedgerLine.objects.order_by("pk").values_list("pk", "code", "status"))
    second = recompute_ledger_task()

    # then: March's lines are billable, April's accruing, and a second run changes nothing
    assert stored == list(LedgerLine.objects.order_by("pk").values_list("pk", "code", "status"))
    assert first == second == 5
    by_month = sorted(
        LedgerLine.objects.values_list("code", "period_start", "period_end", "status")
    )
    assert by_month == [
        ("99445", date(2026, 3, 1), date(2026, 3, 30), "billable"),
        ("99445", date(2026, 3, 31), date(2026, 4, 29), "accruing"),
        ("99453", date(2026, 3, 1), date(2026, 3, 30), "billable"),
        ("99470", date(2026, 3, 1), date(2026, 3, 31), "billable"),
        ("99470", date(2026, 4, 1), date(2026, 4, 30), "accruing"),
    ]


def test_beat_runs_the_task():
    entry = settings.CELERY_BEAT_SCHEDULE["recompute-ledger"]

    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == 6 * 3600.0
