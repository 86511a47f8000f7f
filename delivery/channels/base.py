"""The contract every delivery channel keeps (alert notifications and patient nudges alike).

A channel module has `send(*, target, message, team) -> int | None` (the HTTP status or
None) and raises DeliveryError on failure, saying whether trying again can succeed: a
network error or a 5xx can; a 4xx, a refused address or missing configuration cannot.
Every outbound call has a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool, status_code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


@dataclass(frozen=True)
class Message:
    # Subject and SMS are read on lock screens and kept by mail and phone providers: no
    # names or MRNs, just enough to know how urgent it is and to open Vigil.
    subject: str  # email subject (a push notification's title)
    text: str  # email body: no names or MRNs either; the link into Vigil
    short: str  # SMS (a push notification's body)
    payload: dict  # webhook JSON, signed, to the team's own system: may identify the patient


def classify_http_status(status: int) -> bool | None:
    """None: delivered; True: permanent failure; False: worth retrying."""
    if 200 <= status < 300:
        return None
    # 408 Request Timeout and 429 Too Many Requests are the receiver asking for later.
    return not (status >= 500 or status in (408, 429))
