"""The textbook endpoint the batch path is measured against: benchmark code, not product code.

One reading per request, written the way a DRF tutorial writes it: a ModelSerializer over
Reading, a CreateAPIView, validation by the serializer's own fields and validators (field
types, choices, lengths, and the UniqueTogetherValidator DRF derives from the
(patient, client_id) constraint — one SELECT per reading), a `validate()` that converts to
the canonical unit, and `create()` that saves the row (plus the heart-rate row a BP pulse
adds) and hands the patient to evaluation after commit.

It accepts the same item JSON as `POST /api/v1/readings` and writes the same columns with
the same values (benchmarks/ingest.py checks that each phase's table content is identical),
using the product's unit table and auth; what it does not share is the product's batch path.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import generics, serializers

from monitoring.auth import IsPatientApp
from monitoring.ingest import PULSE_NAMESPACE
from monitoring.models import DoseStatus, Metric, Reading, ReadingSource
from monitoring.tasks import evaluate_patient_readings_task
from monitoring.units import metric_units


class CurrentPatientDefault:
    """The patient comes from the credential, never from the body."""

    requires_context = True

    def __call__(self, serializer_field):
        return serializer_field.context["request"].user.patient


def content_fingerprint(data: dict, pulse: float | None) -> str:
    """SHA-256 of the reading's content, so a re-sent id with other content can be told apart."""
    scheduled_for = data.get("scheduled_for")
    content = [
        data["metric"],
        data.get("sent_value"),
        data.get("sent_unit", ""),
        data.get("systolic"),
        data.get("diastolic"),
        pulse,
        data["measured_at"].timestamp(),
        data.get("context", ""),
        data.get("medication", ""),
        data.get("dose_status", ""),
        scheduled_for.timestamp() if scheduled_for else None,
        data.get("device_serial", ""),
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


class TextbookReadingSerializer(serializers.ModelSerializer):
    patient = serializers.HiddenField(default=CurrentPatientDefault())
    id = serializers.UUIDField(source="client_id")
    type = serializers.ChoiceField(choices=Metric.choices, source="metric")
    value = serializers.FloatField(source="sent_value", required=False)
    unit = serializers.CharField(source="sent_unit", required=False, allow_blank=True)
    pulse = serializers.FloatField(required=False, write_only=True)
    status = serializers.ChoiceField(
        choices=DoseStatus.choices, source="dose_status", required=False
    )
    device = serializers.CharField(
        source="device_serial", required=False, allow_blank=True, max_length=120
    )

    class Meta:
        model = Reading
        fields = [
            "patient", "id", "type", "value", "unit", "systolic", "diastolic", "pulse",
            "context", "medication", "status", "scheduled_for", "measured_at", "device",
        ]  # fmt: skip

    def validate_measured_at(self, value: datetime) -> datetime:
        if value > timezone.now() + settings.VIGIL_FUTURE_SKEW:
            raise serializers.ValidationError("Is more than 5 minutes in the future.")
        return value

    def validate(self, attrs: dict) -> dict:
        metric = attrs["metric"]
        # DRF normalises the datetime to UTC; keep the offset the client stated.
        sent = datetime.fromisoformat(self.initial_data["measured_at"])
        attrs["utc_offset_minutes"] = int(sent.utcoffset() / timedelta(minutes=1))
        if metric == Metric.DOSE:
            if not attrs.get("medication"):
                raise serializers.ValidationError({"medication": "This field is required."})
            if not attrs.get("dose_status"):
                raise serializers.ValidationError({"status": "This field is required."})
            return attrs

        spec = metric_units()[metric]
        unit = spec.lookup(attrs.get("sent_unit") or None)
        if unit is None:
            raise serializers.ValidationError({"unit": f"Not a unit for {metric}."})
        attrs["sent_unit"] = unit.code
        attrs["unit"] = spec.canonical_unit
        if metric == Metric.BLOOD_PRESSURE:
            for name in ("systolic", "diastolic"):
                if attrs.get(name) is None:
                    raise serializers.ValidationError({name: "This field is required."})
                attrs[name] = unit.to_canonical(attrs[name])
                if not spec.components[name].contains(attrs[name]):
                    raise serializers.ValidationError({name: "Outside the plausible range."})
            if attrs["systolic"] <= attrs["diastolic"]:
                raise serializers.ValidationError({"diastolic": "Must be lower than systolic."})
            if attrs.get("pulse") is not None:
                heart_rate = metric_units()["heart_rate"]
                if not heart_rate.plausible.contains(attrs["pulse"]):
                    raise serializers.ValidationError({"pulse": "Outside the plausible range."})
            return attrs

        if attrs.get("sent_value") is None:
            raise serializers.ValidationError({"value": "This field is required."})
        attrs["value"] = unit.to_canonical(attrs["sent_value"])
        if not spec.plausible.contains(attrs["value"]):
            raise serializers.ValidationError({"value": "Outside the plausible range."})
        return attrs

    def create(self, validated_data: dict) -> Reading:
        pulse = validated_data.pop("pulse", None)
        validated_data["received_at"] = timezone.now()
        validated_data["source"] = ReadingSource.APP
        validated_data["fingerprint"] = content_fingerprint(validated_data, pulse)
        with transaction.atomic():
            reading = super().create(validated_data)
            if pulse is not None:
                Reading.objects.create(
                    patient=reading.patient,
                    client_id=uuid.uuid5(PULSE_NAMESPACE, str(reading.client_id)),
                    metric=Metric.HEART_RATE,
                    value=pulse,
                    unit="/min",
                    sent_value=pulse,
                    sent_unit="/min",
                    measured_at=reading.measured_at,
                    utc_offset_minutes=reading.utc_offset_minutes,
                    received_at=reading.received_at,
                    source=reading.source,
                    device_serial=reading.device_serial,
                    part_of=reading.client_id,
                    fingerprint=reading.fingerprint,
                )
        patient_id = reading.patient_id
        transaction.on_commit(lambda: evaluate_patient_readings_task.delay(patient_id))
        return reading


class TextbookReadingCreateApi(generics.CreateAPIView):
    queryset = Reading.objects.all()
    serializer_class = TextbookReadingSerializer
    permission_classes = [IsPatientApp]
