"""Push notifications through Firebase Cloud Messaging's HTTP v1 API, enabled when FCM_* are set.

POST {FCM_API_BASE}/v1/projects/{FCM_PROJECT_ID}/messages:send, one message per registration
token, with an OAuth2 access token of a Google service account (scope firebase.messaging).
google-auth signs the JWT grant and exchanges it at the account's `token_uri`; its HTTP goes
through httpx (HttpxRequest), so that call has our timeout too. The credentials are kept per
process and refreshed shortly before the token expires (about hourly), not per message.

A Message maps to FCM as: `subject` → notification title, `short` → notification body (shown
on a lock screen: no names or clinical detail beyond it), `payload` → the data map (strings).

FCM answers 404 with the error code UNREGISTERED for a token whose app instance is gone: that
raises UnregisteredToken (permanent), and the caller retires the token. Other statuses are
classified like every channel's: 5xx, 408 and 429 may succeed later, any other 4xx never.
"""

from __future__ import annotations

import threading

import google.auth.exceptions
import google.auth.transport
import httpx
from django.conf import settings
from google.oauth2 import service_account

from delivery.channels.base import DeliveryError, Message, classify_http_status

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

_credentials: dict[str, service_account.Credentials] = {}
_credentials_lock = threading.Lock()


class UnregisteredToken(DeliveryError):
    """FCM no longer knows this registration token: retire it, never retry it."""


def is_enabled() -> bool:
    return bool(settings.FCM_PROJECT_ID and settings.FCM_SERVICE_ACCOUNT_FILE)


class HttpxResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self):
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport interface over httpx (instead of its `requests` adapter)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        try:
            response = httpx.request(
                method, url, content=body, headers=headers, timeout=timeout or self.timeout
            )
        except httpx.HTTPError as error:
            raise google.auth.exceptions.TransportError(error.__class__.__name__) from error
        return HttpxResponse(response)


def _load_credentials(path: str) -> service_account.Credentials:
    credentials = _credentials.get(path)
    if credentials is None:
        try:
            credentials = service_account.Credentials.from_service_account_file(
                path, scopes=[SCOPE]
            )
        except (OSError, ValueError) as error:  # missing, unreadable, not a service account
            raise DeliveryError(
                f"FCM service account file unusable: {error.__class__.__name__}", permanent=True
            ) from error
        _credentials[path] = credentials
    return credentials


def access_token() -> str:
    """The service account's current access token, fetched or refreshed when due."""
    with _credentials_lock:
        credentials = _load_credentials(settings.FCM_SERVICE_ACCOUNT_FILE)
        if credentials.valid:
            return credentials.token
        try:
            credentials.refresh(HttpxRequest(settings.VIGIL_WEBHOOK_TIMEOUT))
        except google.auth.exceptions.TransportError as error:
            raise DeliveryError(
                f"FCM token endpoint unreachable: {error}", permanent=False
            ) from error
        except google.auth.exceptions.RefreshError as error:
            # google-auth has already retried a 5xx/429 twice; `retryable` says what it was.
            raise DeliveryError(
                f"FCM access token refused: {error.args[0]}", permanent=not error.retryable
            ) from error
        return credentials.token


def build_body(*, target: str, message: Message) -> dict:
    return {
        "message": {
            "token": target,
            "notification": {"title": message.subject, "body": message.short},
            # FCM's data map holds strings only.
            "data": {key: str(value) for key, value in message.payload.items()},
            "android": {"priority": "high"},
            # APNs priority 10: deliver now (5 lets iOS hold it to save power).
            "apns": {
                "headers": {"apns-priority": "10", "apns-push-type": "alert"},
                "payload": {"aps": {"sound": "default"}},
            },
        }
    }


def fcm_error_code(response: httpx.Response) -> str | None:
    """FCM's own error code (UNREGISTERED, QUOTA_EXCEEDED …), else the gRPC status."""
    try:
        error = response.json()["error"]
        for detail in error.get("details") or []:
            if detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
                return str(detail["errorCode"])
        return str(error["status"]) if error.get("status") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def send(*, target: str, message: Message, team=None) -> int | None:
    if not is_enabled():
        raise DeliveryError("push is not configured (FCM_* settings)", permanent=True)
    headers = {"Authorization": f"Bearer {access_token()}"}
    url = f"{settings.FCM_API_BASE}/v1/projects/{settings.FCM_PROJECT_ID}/messages:send"
    try:
        response = httpx.post(
            url,
            json=build_body(target=target, message=message),
            headers=headers,
            timeout=settings.VIGIL_WEBHOOK_TIMEOUT,
        )
    except httpx.HTTPError as error:
        raise DeliveryError(
            f"FCM unreachable: {error.__class__.__name__}", permanent=False
        ) from error
    permanent = classify_http_status(response.status_code)
    if permanent is None:
        return response.status_code
    code = fcm_error_code(response)
    reason = f"FCM answered {response.status_code}" + (f" {code}" if code else "")
    # Only FCM's own UNREGISTERED retires a token: a bare 404 may be a wrong project id,
    # which must not retire every patient's tokens.
    error_class = UnregisteredToken if code == "UNREGISTERED" else DeliveryError
    raise error_class(reason, permanent=permanent, status_code=response.status_code)
