"""An HTTP server on 127.0.0.1 standing in for someone else's (a webhook receiver, Twilio,
Google): it records every request as it arrived and answers as the test scripts it."""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body)


class HttpReceiver:
    """Records every request; answers with the scripted statuses in order, then 200.

    `hold()` makes answers wait until `release()`, so a test can act while a delivery is in
    flight; `delay` makes each answer late (a timeout on the sender's side). Subclasses
    change what is answered (`_reply`) and which requests are held (`_holds`).
    """

    content_type = "application/json"

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self.arrived = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A sender that gave up (timeout) leaves a broken pipe behind: not a test failure.
        self._server.handle_error = lambda request, client_address: None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _reply(self, path: str) -> tuple[int, dict]:
        """The status and JSON body for a request to `path` (called under the lock)."""
        return (self.statuses.pop(0) if self.statuses else 200), {"ok": True}

    def _holds(self, path: str) -> bool:
        return True

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            method=self.command,
                            path=self.path,
                            headers={name.lower(): value for name, value in self.headers.items()},
                            body=body,
                        )
                    )
                    status, answer = receiver._reply(self.path)
                if receiver._holds(self.path):
                    receiver.arrived.set()
                    receiver._released.wait(timeout=30)
                    if receiver.delay:
                        threading.Event().wait(receiver.delay)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self):
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
