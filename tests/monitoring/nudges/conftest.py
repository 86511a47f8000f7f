"""Nudge tests: the notifications queue in the test broker, the rails as configured here,
and a set of message variants replacing whatever the data migration left in the database."""

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings as django_settings

from monitoring.models import NudgeVariant
from tests.factories import NudgeVariantFactory
from tests.monitoring.conftest import BrokerQueue


@pytest.fixture
def _rails(settings):
    # The defaults spelled out, so a changed default does not silently change these tests.
    # Not autouse: the tests of delivery and of the sweeps (test_delivery.py, test_sweeps.py)
    # run on the configured settings; the others ask for it in their `pytestmark`.
    settings.VIGIL_NUDGE_WARMUP_DECISIONS = 5
    settings.VIGIL_NUDGE_MIN_PROBABILITY = 0.1
    settings.VIGIL_NUDGE_MAX_PROBABILITY = 0.8
    settings.VIGIL_NUDGE_MIN_GAP_MINUTES = 30
    settings.VIGIL_NUDGE_PRIOR_STRENGTH = 10.0
    settings.VIGIL_NONRESPONSE_MISSES = 2


@pytest.fixture
def notifications_queue() -> Iterator[BrokerQueue]:
    """The 'notifications' queue (deliveries, alert routing), empty at the start."""
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    queue = BrokerQueue(client, "notifications")
    queue.purge()
    yield queue
    queue.purge()
    client.close()


@pytest.fixture
def variants(db) -> dict[str, NudgeVariant]:
    """Three English reminders, one German, a supportive message after a miss and a streak
    message; the migration's defaults are switched off so only these are candidates."""
    NudgeVariant.objects.update(active=False)
    made = [
        NudgeVariantFactory(key="benefit", kind="benefit", text="Time for {what} ({time})."),
        NudgeVariantFactory(
            key="care-team", kind="care_team", text="Your care team follows {what} ({time})."
        ),
        NudgeVariantFactory(key="plain", text="Reminder: {what} is due at {time}."),
        NudgeVariantFactory(
            key="plain-german", language="de", text="Erinnerung: {what} ist um {time} fällig."
        ),
        NudgeVariantFactory(
            key="supportive",
            kind="supportive",
            purposes=["measurement_missed", "dose_missed"],
            text="Nothing was logged for {what} at {time}.",
        ),
        NudgeVariantFactory(
            key="streak",
            kind="streak",
            purposes=["streak"],
            text="{streak} days in a row with everything logged. Well done!",
        ),
    ]
    return {variant.key: variant for variant in made}
