"""The servers on the loopback and the notifications queue the alerts' tests stand up: the
outbox's tests send through the same channels."""

from tests.alerts.conftest import notifications_queue, receiver, refused_url, twilio  # noqa: F401
