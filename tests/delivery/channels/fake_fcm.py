"""Google's side of a push, stood up on 127.0.0.1: the OAuth2 token endpoint a service
account's `token_uri` names, and FCM's HTTP v1 `messages:send`.

The product is not patched: google-auth reads a real service-account file (a throwaway RSA
key made here), signs its JWT grant and posts it to this server, which answers with an access
token; the push channel then posts the message here with that bearer. Every request is
recorded as it arrived; answers are scripted per endpoint, in order, then 200. The same
server answers any other path (Twilio's Messages resource, say) with the `other` script.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.http_receiver import HttpReceiver, ReceivedRequest

PROJECT_ID = "vigil-test"
CLIENT_EMAIL = "vigil-push@vigil-test.iam.gserviceaccount.com"
KEY_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
SEND_PATH = f"/v1/projects/{PROJECT_ID}/messages:send"
TOKEN_PATH = "/token"


def fcm_error(status: int, grpc_status: str, error_code: str | None = None) -> dict:
    """An error body as FCM's HTTP v1 API writes it (google.rpc.Status + FcmError detail)."""
    error = {"code": status, "message": f"{grpc_status} (test)", "status": grpc_status}
    if error_code:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    return {"error": error}


@cache
def private_key() -> rsa.RSAPrivateKey:
    """A throwaway 2048-bit key, made once per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_service_account(path: Path, *, token_uri: str) -> Path:
    """A service-account key file as the Google Cloud console downloads it."""
    pem = private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": KEY_ID,
        "private_key": pem.decode(),
        "client_email": CLIENT_EMAIL,
        "client_id": "104857600000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


def verify_jwt(assertion: str) -> tuple[dict, dict]:
    """(header, claims) of a JWT grant, after checking its RS256 signature with our key."""
    encoded_header, encoded_claims, encoded_signature = assertion.split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    private_key().public_key().verify(  # raises InvalidSignature
        decode(encoded_signature),
        f"{encoded_header}.{encoded_claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(decode(encoded_header)), json.loads(decode(encoded_claims))


class FakeGoogle(HttpReceiver):
    """Records every request; answers each endpoint from its script, then with success.

    Access tokens are handed out as ya29.test-access-token-1, -2, … `hold()` makes answers
    to messages:send wait until `release()` (a push in flight); `delay` makes them late.
    """

    content_type = "application/json; charset=UTF-8"

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, list[tuple[int, dict]]] = {"token": [], "send": [], "other": []}
        self.tokens_issued = 0

    def answer_token(self, status: int, body: dict) -> None:
        self.scripts["token"].append((status, body))

    def answer_send(self, status: int, body: dict | None = None) -> None:
        self.scripts["send"].append((status, body or {}))

    def answer_other(self, status: int, body: dict | None = None) -> None:
        self.scripts["other"].append((status, body or {}))

    def to(self, path: str) -> list[ReceivedRequest]:
        return [request for request in self.requests if request.path == path]

    def _holds(self, path: str) -> bool:
        # Only FCM's send waits: a held token exchange would stall every sender at once.
        return path == SEND_PATH

    def _reply(self, path: str) -> tuple[int, dict]:
        endpoint = {TOKEN_PATH: "token", SEND_PATH: "send"}.get(path, "other")
        script = self.scripts[endpoint]
        if script:
            return script.pop(0)
        if endpoint == "token":
            self.tokens_issued += 1
            token = f"ya29.test-access-token-{self.tokens_issued}"
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if endpoint == "send":
            return 200, {"name": f"projects/{PROJECT_ID}/messages/0:1772346600000000%31bd1c9"}
        return 201, {}


def configure_push(settings, fake: FakeGoogle, directory: Path) -> Path:
    """Push enabled: a service account whose token_uri is the fake, FCM's base the fake."""
    account = write_service_account(
        directory / "service-account.json", token_uri=fake.url + "/token"
    )
    settings.FCM_PROJECT_ID = PROJECT_ID
    settings.FCM_SERVICE_ACCOUNT_FILE = str(account)
    settings.FCM_API_BASE = fake.url
    return account
