"""Request and response examples for the OpenAPI document (/api/schema/, /api/docs/)."""

from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers

INGEST_RESPONSE = inline_serializer(
    "IngestResult",
    {
        "created": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "conflicts": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "results": inline_serializer(
            "IngestItemResult",
            {
                "id": serializers.CharField(allow_null=True),
                "status": serializers.ChoiceField(["created", "duplicate", "conflict", "rejected"]),
                "errors": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
            many=True,
        ),
    },
)

STAFF_LOGIN = [
    OpenApiExample(
        "Staff login",
        value={"username": "nurse.jones", "password": "correct horse battery staple"},
        request_only=True,
    ),
    OpenApiExample(
        "Token issued",
        value={"token": "vgs_Qm9iIHRoZSBub3JtYWwgdG9rZW4", "expires_at": "2026-03-01T19:30:00Z"},
        response_only=True,
        status_codes=["201"],
    ),
    OpenApiExample(
        "Wrong password",
        value={
            "detail": "Invalid input.",
            "errors": {
                "non_field_errors": ["Invalid username or password, or not a staff account."]
            },
        },
        response_only=True,
        status_codes=["400"],
    ),
]

READINGS_POST = [
    OpenApiExample(
        "A batch",
        value={
            "readings": [
                {
                    "id": "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d",
                    "type": "glucose",
                    "value": 5.4,
                    "unit": "mmol/L",
                    "context": "fasting",
                    "measured_at": "2026-03-01T07:30:00+01:00",
                },
                {
                    "id": "1c9e6a2b-0d4f-4e8a-b7c3-5f2d1a9e8b70",
                    "type": "blood_pressure",
                    "systolic": 142,
                    "diastolic": 91,
                    "pulse": 72,
                    "measured_at": "2026-03-01T07:35:00+01:00",
                    "device": "BP-88213",
                },
                {
                    "id": "e41a0c3d-7b9f-4d2e-8a61-3c5b7d9f0e12",
                    "type": "dose",
                    "medication": "warfarin-5mg",
                    "status": "taken",
                    "scheduled_for": "2026-03-01T08:00:00+01:00",
                    "measured_at": "2026-03-01T08:04:00+01:00",
                },
            ]
        },
        request_only=True,
    ),
    OpenApiExample(
        "One reading",
        value={
            "id": "0f6b2c1e-9d8a-4b7c-a5e3-2d1f0c9b8a76",
            "type": "weight",
            "value": 176.4,
            "unit": "lb",
            "measured_at": "2026-03-01T06:58:00-05:00",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Per-item results",
        value={
            "created": 2,
            "duplicates": 1,
            "conflicts": 0,
            "rejected": 1,
            "results": [
                {"id": "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d", "status": "created"},
                {"id": "1c9e6a2b-0d4f-4e8a-b7c3-5f2d1a9e8b70", "status": "duplicate"},
                {"id": "e41a0c3d-7b9f-4d2e-8a61-3c5b7d9f0e12", "status": "created"},
                {
                    "id": "5d2c8b1a-6e4f-4a3b-9c7d-0e1f2a3b4c5d",
                    "status": "rejected",
                    "errors": {
                        "value": ["glucose 2000 mg/dL is outside the plausible range 10–1000 mg/dL"]
                    },
                },
            ],
        },
        response_only=True,
        status_codes=["201"],
    ),
    OpenApiExample(
        "Malformed body",
        value={"detail": "A batch holds at most 500 readings; this one has 501. Split it."},
        response_only=True,
        status_codes=["400"],
    ),
]

READINGS_LIST = [
    OpenApiExample(
        "A page of readings",
        value={
            "next": "https://vigil.example/api/v1/readings?cursor=cD0yMDI2LTAz",
            "previous": None,
            "results": [
                {
                    "id": "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d",
                    "type": "glucose",
                    "measured_at": "2026-03-01T07:30:00+01:00",
                    "received_at": "2026-03-01T06:31:02.120000+00:00",
                    "source": "app",
                    "device": None,
                    "value": 97.28424,
                    "unit": "mg/dL",
                    "sent": {"value": 5.4, "unit": "mmol/L"},
                    "context": "fasting",
                },
                {
                    "id": "1c9e6a2b-0d4f-4e8a-b7c3-5f2d1a9e8b70",
                    "type": "blood_pressure",
                    "measured_at": "2026-03-01T07:35:00+01:00",
                    "received_at": "2026-03-01T06:36:00+00:00",
                    "source": "device",
                    "device": "BP-88213",
                    "systolic": 142.0,
                    "diastolic": 91.0,
                    "unit": "mm[Hg]",
                },
            ],
        },
        response_only=True,
    ),
]

ME = [
    OpenApiExample(
        "Profile",
        value={
            "id": 12,
            "external_id": "MRN-004211",
            "name": "Ada Example",
            "timezone": "Europe/Berlin",
            "protocols": ["heart_failure", "hypertension"],
            "preferences": {
                "glucose_unit": "mg/dL",
                "weight_unit": "kg",
                "language": "de",
                "nudge_channel": "in_app",
                "quiet_hours_start": "22:00",
                "quiet_hours_end": "07:00",
                "daily_nudge_cap": 3,
            },
            "schedules": [],
            "medications": [],
            "targets": [],
        },
        response_only=True,
    )
]

PATIENT_CREATE = [
    OpenApiExample(
        "Enrol a patient",
        value={
            "external_id": "MRN-004211",
            "name": "Ada Example",
            "timezone": "Europe/Berlin",
            "care_team": 3,
            "protocols": ["heart_failure", "hypertension"],
            "preferences": {"weight_unit": "kg", "language": "de"},
        },
        request_only=True,
    ),
    OpenApiExample(
        "Unknown protocol",
        value={
            "detail": "Invalid input.",
            "errors": {"protocols": {"0": ['"asthma" is not a valid choice.']}},
        },
        response_only=True,
        status_codes=["400"],
    ),
]

APP_TOKEN = [
    OpenApiExample(
        "App token issued",
        value={
            "id": 41,
            "token": "vgp_c2hvd24gb25jZSBhbmQgbmV2ZXIgYWdhaW4",
            "expires_at": "2026-05-30T10:00:00Z",
        },
        response_only=True,
        status_codes=["201"],
    )
]

DEVICE_CREATE = [
    OpenApiExample(
        "Register a scale",
        value={"kind": "scale", "model": "Withings Body+", "serial": "WB-0042-1187"},
        request_only=True,
    ),
    OpenApiExample(
        "Device issued",
        value={
            "id": 7,
            "kind": "scale",
            "model": "Withings Body+",
            "serial": "WB-0042-1187",
            "created_at": "2026-03-01T10:00:00Z",
            "revoked_at": None,
            "last_seen_at": None,
            "key": "vgd_a2V5IGZvciB0aGUgc2NhbGUgb25seQ",
        },
        response_only=True,
        status_codes=["201"],
    ),
]

CARE_TEAMS = [
    OpenApiExample(
        "Create a care team",
        value={
            "name": "Heart failure clinic",
            "members": [
                {"username": "nurse.jones", "role": "nurse", "escalation_level": 1},
                {"username": "dr.okafor", "role": "physician", "escalation_level": 2},
            ],
        },
        request_only=True,
    ),
    OpenApiExample(
        "Care team",
        value={
            "id": 3,
            "name": "Heart failure clinic",
            "members": [
                {"username": "nurse.jones", "role": "nurse", "escalation_level": 1},
                {"username": "dr.okafor", "role": "physician", "escalation_level": 2},
            ],
        },
        response_only=True,
    ),
]
