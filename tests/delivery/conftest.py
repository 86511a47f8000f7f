"""The servers on the loopback and the notifications queue the alerts' tests stand up: the
outbox and its channels are tested against the same ones."""

from tests.alerts.conftest import (  # noqa: F401
    notifications_queue,
    receiver,
    refused_url,
    smtp_server,
    twilio,
)
