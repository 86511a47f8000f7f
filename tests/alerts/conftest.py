"""What leaves the machine, stood up on 127.0.0.1, and the notifications queue in Redis.

Channels are tested against real servers on the loopback: an HTTP receiver (webhooks, the
Twilio REST API) and an SMTP server, each recording exactly what arrived and answering as
scripted. Nothing in the product is patched.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings

from tests.http_receiver import HttpReceiver
from tests.monitoring.conftest import BrokerQueue


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Each persona's password is hashed when it is made: PBKDF2's real cost (~0.5 s a user on
    # this machine) would dominate these tests, none of which logs in with a password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- An HTTP receiver ---------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 recording what it receives (webhooks, Twilio's API)."""
    server = HttpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/vigil"


# --- An SMTP server -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    data: str


class SmtpServer:
    """Just enough SMTP (RFC 5321) for smtplib: the replies to the greeting and to RCPT TO
    are scripted, so it can accept, refuse for good (5yz) or refuse for now (4yz)."""

    def __init__(self) -> None:
        self.greeting = "220 mail.clinic.test ESMTP"
        self.rcpt_reply = "250 OK"
        self.messages: list[ReceivedMail] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        smtp = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply(smtp.greeting)
                if not smtp.greeting.startswith("2"):
                    return
                sender, recipients = "", []
                while line := self.rfile.readline().decode().rstrip("\r\n"):
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 mail.clinic.test")
                    elif verb == "MAIL":
                        sender = line.split(":", 1)[1].strip().strip("<>")
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        if smtp.rcpt_reply.startswith("2"):
                            recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                        self.reply(smtp.rcpt_reply)
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        lines = []
                        while (data := self.rfile.readline().decode()) != ".\r\n":
                            lines.append(data)
                        smtp.messages.append(ReceivedMail(sender, recipients, "".join(lines)))
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:  # RSET, NOOP
                        self.reply("250 OK")

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def smtp_server(settings) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1, and Django's SMTP backend pointed at it."""
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


# --- SMS through the local receiver --------------------------------------------------------


@pytest.fixture
def twilio(settings, receiver) -> HttpReceiver:
    """SMS enabled, with Twilio's REST API base pointed at the local receiver."""
    settings.TWILIO_ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
    settings.TWILIO_AUTH_TOKEN = "twilio-test-auth-token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE = receiver.url
    return receiver


# --- The notifications queue --------------------------------------------------------------


@pytest.fixture
def notifications_queue() -> Iterator[BrokerQueue]:
    """The 'notifications' queue in the test broker, empty at the start and purged after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = BrokerQueue(client, "notifications")
    queue.purge()
    yield queue
    queue.purge()
    client.close()


@pytest.fixture
def evaluation_queue() -> Iterator[BrokerQueue]:
    """The default 'evaluation' queue (sweeps re-enqueue themselves there), purged around."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = BrokerQueue(client, "evaluation")
    queue.purge()
    yield queue
    queue.purge()
    client.close()
