"""Request and response examples for the OpenAPI document (/api/schema/, /api/docs/)."""

from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from monitoring.rules import rate_of_change, threshold

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

READING_ITEM = inline_serializer(
    "ReadingItem",
    {
        "id": serializers.UUIDField(help_text="Made by the client; the idempotency key."),
        "type": serializers.ChoiceField(
            [
                "glucose",
                "blood_pressure",
                "weight",
                "inr",
                "heart_rate",
                "spo2",
                "temperature",
                "dose",
            ]
        ),
        "value": serializers.FloatField(required=False, help_text="All but blood_pressure, dose."),
        "unit": serializers.CharField(
            required=False,
            help_text="glucose mg/dL|mmol/L; weight kg|lb; temperature Cel|[degF] (°C, °F); "
            "others may omit it.",
        ),
        "systolic": serializers.FloatField(required=False, help_text="blood_pressure, mmHg"),
        "diastolic": serializers.FloatField(required=False, help_text="blood_pressure, mmHg"),
        "pulse": serializers.FloatField(
            required=False, help_text="blood_pressure; also stored as a heart_rate reading"
        ),
        "measured_at": serializers.DateTimeField(
            help_text="RFC 3339 with a UTC offset; at most 5 minutes in the future."
        ),
        "context": serializers.ChoiceField(
            ["fasting", "before_meal", "after_meal", "bedtime", "random"], required=False
        ),
        "device": serializers.CharField(required=False, help_text="The device's serial."),
        "entry": serializers.ChoiceField(
            ["device", "manual"],
            required=False,
            help_text="device: measured by a device and sent automatically; manual: typed by "
            "a person. Default: device for a device key, manual for an app token.",
        ),
        "medication": serializers.CharField(required=False, help_text="dose: medication id"),
        "status": serializers.ChoiceField(["taken", "skipped"], required=False),
        "scheduled_for": serializers.DateTimeField(required=False),
    },
)

READING_BATCH = inline_serializer(
    "ReadingBatch",
    {"readings": serializers.ListField(child=READING_ITEM, min_length=1, max_length=500)},
)

# docs/api.md: the body is a batch or a single ITEM.
READING_UPLOAD = PolymorphicProxySerializer(
    component_name="ReadingUpload",
    serializers=[READING_BATCH, READING_ITEM],
    resource_type_field_name=None,
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

# One item each: drf-spectacular puts a list example inside the pagination envelope itself.
READINGS_LIST = [
    OpenApiExample(
        "A glucose reading",
        value={
            "id": "7b0d5f8e-3c2a-4f61-9d0b-2a4e6c8f1b3d",
            "type": "glucose",
            "measured_at": "2026-03-01T07:30:00+01:00",
            "received_at": "2026-03-01T06:31:02.120000+00:00",
            "source": "app",
            "entry": "manual",
            "device": None,
            "value": 97.28424,
            "unit": "mg/dL",
            "sent": {"value": 5.4, "unit": "mmol/L"},
            "context": "fasting",
        },
        response_only=True,
    ),
    OpenApiExample(
        "A blood pressure reading",
        value={
            "id": "1c9e6a2b-0d4f-4e8a-b7c3-5f2d1a9e8b70",
            "type": "blood_pressure",
            "measured_at": "2026-03-01T07:35:00+01:00",
            "received_at": "2026-03-01T06:36:00+00:00",
            "source": "device",
            "entry": "device",
            "device": "BP-88213",
            "systolic": 142.0,
            "diastolic": 91.0,
            "unit": "mm[Hg]",
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
            "schedules": [
                {
                    "id": 31,
                    "metric": "weight",
                    "times": ["07:00"],
                    "days_of_week": [],
                    "window_minutes": 180,
                },
                {
                    "id": 32,
                    "metric": "blood_pressure",
                    "times": ["07:00", "19:00"],
                    "days_of_week": [],
                    "window_minutes": 120,
                },
            ],
            "medications": [
                {
                    "id": 8,
                    "medication": "furosemide-40mg",
                    "name": "Furosemide 40 mg",
                    "dose_times": ["08:00"],
                    "days_of_week": [],
                    "window_minutes": 120,
                    "critical": False,
                }
            ],
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

ALERT_EXAMPLE = {
    "id": 981,
    "patient": 12,
    "rule": {
        "id": 311,
        "kind": threshold.KIND.name,
        "metric": "glucose",
        "version": 2,
        "parameters": {
            "conditions": [{"component": "value", "op": "lt", "value": 54}],
            "match": "all",
        },
    },
    "severity": "critical",
    "status": "open",
    "title": "Level 2 hypoglycaemia",
    "detail": "50 mg/dL at 2026-03-01 07:30 CET; rule: < 54 mg/dL",
    "occurrences": 2,
    "first_triggered_at": "2026-03-01T06:30:00+00:00",
    "last_triggered_at": "2026-03-01T06:45:00+00:00",
    "condition_cleared_at": None,
    "escalation_level": 1,
    "assignee": None,
    "acknowledged_by": None,
    "acknowledged_at": None,
    "resolved_by": None,
    "resolved_at": None,
    "resolution_reason": "",
}

# One item: drf-spectacular puts a list example inside the pagination envelope itself.
ALERTS = [OpenApiExample("An alert", value=ALERT_EXAMPLE, response_only=True)]

ALERT_NOTE = [
    OpenApiExample(
        "Note", value={"note": "Called the patient; glucose 112 after juice."}, request_only=True
    ),
    OpenApiExample(
        "Acknowledged",
        value=ALERT_EXAMPLE
        | {
            "status": "acknowledged",
            "acknowledged_by": "nurse.jones",
            "acknowledged_at": "2026-03-01T06:50:00+00:00",
            "assignee": "nurse.jones",
        },
        response_only=True,
        status_codes=["200"],
    ),
    OpenApiExample(
        "Already resolved",
        value={"detail": "This alert is already resolved."},
        response_only=True,
        status_codes=["409"],
    ),
]

ALERT_RESOLVE = [
    OpenApiExample(
        "Note and reason",
        value={
            "note": "Called the patient; glucose 112 after juice.",
            "reason": "contacted_patient",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Resolved",
        value=ALERT_EXAMPLE
        | {
            "status": "resolved",
            "acknowledged_by": "nurse.jones",
            "acknowledged_at": "2026-03-01T06:50:00+00:00",
            "assignee": "nurse.jones",
            "resolved_by": "nurse.jones",
            "resolved_at": "2026-03-01T07:05:00+00:00",
            "resolution_reason": "contacted_patient",
        },
        response_only=True,
        status_codes=["200"],
    ),
    OpenApiExample(
        "Unknown reason",
        value={
            "detail": "Invalid input.",
            "errors": {"reason": ['"fixed" is not a valid choice.']},
        },
        response_only=True,
        status_codes=["400"],
    ),
    ALERT_NOTE[2],
]

RULE_EXAMPLE = {
    "id": 311,
    "key": "hypoglycemia_level_2",
    "protocol": "diabetes",
    "kind": threshold.KIND.name,
    "metric": "glucose",
    "severity": "critical",
    "group": "glucose_low",
    "title": "Level 2 hypoglycaemia",
    "parameters": {"conditions": [{"component": "value", "op": "lt", "value": 54}], "match": "all"},
    "default_parameters": {
        "conditions": [{"component": "value", "op": "lt", "value": 54}],
        "match": "all",
    },
    "reference": "blood_glucose.thresholds.hypoglycemia_level_2",
    "source": "verified: ada_soc_glycemic_targets, ihsg_2017",
    "active": True,
    "version": 1,
    "updated_at": "2026-03-01T06:00:00+00:00",
}

# One item: drf-spectacular makes the list of a list example itself.
RULES = [OpenApiExample("A rule", value=RULE_EXAMPLE, response_only=True, status_codes=["200"])]

RULE_CREATE = [
    OpenApiExample(
        "Add a rule",
        value={
            "key": "weight_gain_2kg_3d",
            "kind": rate_of_change.KIND.name,
            "metric": "weight",
            "severity": "warning",
            "group": "weight_gain",
            "title": "Weight gain over 3 days",
            "parameters": {"window_days": 3, "delta": 2.0, "direction": "gain", "op": "gt"},
            "note": "ESC self-care advice, per Dr Okafor",
        },
        request_only=True,
    ),
    OpenApiExample(
        "A wrong parameter",
        value={
            "detail": "Invalid input.",
            "errors": {"parameters": {"delta": ["This parameter is required."]}},
        },
        response_only=True,
        status_codes=["400"],
    ),
]

RULE_CHANGE = [
    OpenApiExample(
        "Tailor a threshold",
        value={
            "parameters": {
                "conditions": [{"component": "value", "op": "lt", "value": 60}],
                "match": "all",
            },
            "note": "Hypoglycaemia unawareness: alert earlier",
            "version": 1,
        },
        request_only=True,
    ),
    OpenApiExample(
        "New version", value=RULE_EXAMPLE | {"version": 2}, response_only=True, status_codes=["200"]
    ),
    OpenApiExample(
        "Changed since that version",
        value={
            "detail": "The rule changed since that version.",
            "errors": {
                "version": ["The rule is at version 3 now; reload it and make the change again."]
            },
        },
        response_only=True,
        status_codes=["409"],
    ),
]

NUDGE_EXAMPLE = {
    "id": 5120,
    "purpose": "measurement_due",
    "text": "Time to step on the scale: your weight helps your care team spot fluid early.",
    "channel": "push",
    "status": "sent",
    "created_at": "2026-03-01T06:30:00Z",
    "sent_at": "2026-03-01T06:30:01Z",
    "opened_at": None,
}

# One item: drf-spectacular puts a list example inside the pagination envelope itself.
NUDGES = [OpenApiExample("A nudge", value=NUDGE_EXAMPLE, response_only=True)]

NUDGE_OPENED = [
    OpenApiExample(
        "Opened",
        value=NUDGE_EXAMPLE | {"opened_at": "2026-03-01T06:42:10Z"},
        response_only=True,
        status_codes=["200"],
    ),
    OpenApiExample(
        "Not one of the patient's nudges",
        value={"detail": "Not found."},
        response_only=True,
        status_codes=["404"],
    ),
]

PUSH_TOKEN_REGISTER = [
    OpenApiExample(
        "Register the app's FCM token",
        value={
            "token": "fGx1c2gtdG9rZW4tb2YtdGhpcy1hcHAtaW5zdGFsbA:APA91bH",
            "platform": "android",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Registered",
        value={
            "id": 88,
            "token": "fGx1c2gtdG9rZW4tb2YtdGhpcy1hcHAtaW5zdGFsbA:APA91bH",
            "platform": "android",
            "created_at": "2026-03-01T06:00:00Z",
        },
        response_only=True,
        status_codes=["201", "200"],
    ),
    OpenApiExample(
        "Unknown platform",
        value={
            "detail": "Invalid input.",
            "errors": {"platform": ['"symbian" is not a valid choice.']},
        },
        response_only=True,
        status_codes=["400"],
    ),
]

PUSH_TOKEN_DELETE = [
    OpenApiExample(
        "Forget the app's FCM token",
        value={"token": "fGx1c2gtdG9rZW4tb2YtdGhpcy1hcHAtaW5zdGFsbA:APA91bH"},
        request_only=True,
    ),
]

# --- Schedules and medication plans ---------------------------------------------------------

SCHEDULE_EXAMPLE = {
    "id": 31,
    "key": "weight_morning",
    "protocol": "heart_failure",
    "metric": "weight",
    "times": ["07:00"],
    "days_of_week": [],
    "window_minutes": 180,
    "active": True,
    "next_slot_at": "2026-03-02T06:00:00+00:00",
    "created_at": "2026-03-01T10:00:00+00:00",
    "updated_at": "2026-03-01T10:00:00+00:00",
}

# One item: drf-spectacular makes the list of a list example itself.
SCHEDULES = [
    OpenApiExample("A schedule", value=SCHEDULE_EXAMPLE, response_only=True, status_codes=["200"])
]

SCHEDULE_CREATE = [
    OpenApiExample(
        "INR on Monday mornings",
        value={
            "key": "inr_clinic",
            "metric": "inr",
            "times": ["08:00"],
            "days_of_week": [0],
            "window_minutes": 720,
        },
        request_only=True,
    ),
    OpenApiExample(
        "Wrong fields",
        value={
            "detail": "Invalid input.",
            "errors": {
                "times": {"0": ['Not a 24-hour local time "HH:MM", e.g. "07:00".']},
                "days_of_week": {"0": ["Ensure this value is less than or equal to 6."]},
            },
        },
        response_only=True,
        status_codes=["400"],
    ),
]

SCHEDULE_CHANGE = [
    OpenApiExample(
        "Weigh later on weekends",
        value={"times": ["08:30"], "days_of_week": [5, 6]},
        request_only=True,
    ),
    OpenApiExample(
        "Changed",
        value=SCHEDULE_EXAMPLE | {"times": ["08:30"], "days_of_week": [5, 6]},
        response_only=True,
        status_codes=["200"],
    ),
]

MEDICATION_EXAMPLE = {
    "id": 8,
    "medication": "warfarin-5mg",
    "name": "Warfarin 5 mg",
    "dose_times": ["18:00"],
    "days_of_week": [],
    "window_minutes": 120,
    "critical": True,
    "active": True,
    "next_slot_at": "2026-03-01T17:00:00+00:00",
    "created_at": "2026-03-01T10:00:00+00:00",
    "updated_at": "2026-03-01T10:00:00+00:00",
}

MEDICATIONS = [
    OpenApiExample(
        "A medication plan", value=MEDICATION_EXAMPLE, response_only=True, status_codes=["200"]
    )
]

MEDICATION_CREATE = [
    OpenApiExample(
        "An anticoagulant, every evening",
        value={
            "medication": "warfarin-5mg",
            "name": "Warfarin 5 mg",
            "dose_times": ["18:00"],
            "window_minutes": 120,
            "critical": True,
        },
        request_only=True,
    ),
    OpenApiExample(
        "A plan for this medication exists",
        value={
            "detail": "Invalid input.",
            "errors": {"medication": ["The patient already has a plan for this medication."]},
        },
        response_only=True,
        status_codes=["400"],
    ),
]

MEDICATION_CHANGE = [
    OpenApiExample("Twice a day", value={"dose_times": ["08:00", "20:00"]}, request_only=True),
    OpenApiExample(
        "Changed",
        value=MEDICATION_EXAMPLE | {"dose_times": ["08:00", "20:00"]},
        response_only=True,
        status_codes=["200"],
    ),
]
