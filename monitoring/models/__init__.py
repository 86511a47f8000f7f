"""Monitoring models, one module per part of the domain; import them from here."""

from monitoring.models.patients import (
    Device,
    DeviceKind,
    GlucoseUnit,
    NudgeChannel,
    Patient,
    PatientAppToken,
    PatientQuerySet,
    Protocol,
    ProtocolCode,
    ProtocolQuerySet,
    StaffToken,
    WeightUnit,
    hash_secret,
    new_secret,
    validate_timezone,
)
from monitoring.models.readings import DoseStatus, GlucoseContext, Metric, Reading, ReadingSource
from monitoring.models.rules import Rule, RuleKind, RuleRevision, Severity

__all__ = [
    "Device",
    "DeviceKind",
    "DoseStatus",
    "GlucoseContext",
    "GlucoseUnit",
    "Metric",
    "NudgeChannel",
    "Patient",
    "PatientAppToken",
    "PatientQuerySet",
    "Protocol",
    "ProtocolCode",
    "ProtocolQuerySet",
    "Reading",
    "ReadingSource",
    "Rule",
    "RuleKind",
    "RuleRevision",
    "Severity",
    "StaffToken",
    "WeightUnit",
    "hash_secret",
    "new_secret",
    "validate_timezone",
]
