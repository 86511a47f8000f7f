import hashlib
import json
from pathlib import Path

import pytest
from django.test import Client

from interop.nightscout.uploaders import issue_uploader

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


class Uploader:
    """A Nightscout uploader configured with the patient's base URL and secret."""

    def __init__(self, record, secret: str, client: Client | None = None):
        self.record = record
        self.secret = secret
        self.base = f"/nightscout/{record.slug}/api/v1/"
        self.client = client or Client()
        self.headers = {"api-secret": hashlib.sha1(secret.encode()).hexdigest()}

    def get(self, path: str, data=None, **headers):
        return self.client.get(self.base + path, data, headers=headers or self.headers)

    def post(self, path: str, body, **headers):
        return self.client.post(
            self.base + path,
            json.dumps(body),
            content_type="application/json",
            headers=headers or self.headers,
        )


@pytest.fixture
def uploader(patient, coordinator):
    record, secret = issue_uploader(patient=patient, created_by=coordinator)
    return Uploader(record, secret)
