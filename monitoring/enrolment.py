"""Enrolling patients on protocols."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from alerts.models import CareTeam
from monitoring.models import Patient, Protocol
from monitoring.patient_rules import apply_protocols
from monitoring.schedules import apply_protocol_schedules


class DuplicatePatient(Exception):
    """Another patient of the same care team already has this external id (MRN)."""


def enrol_patient(
    *,
    external_id: str,
    name: str,
    timezone: str,
    care_team: CareTeam,
    protocols: list[str],
    preferences: dict | None = None,
) -> Patient:
    """Writes a Patient, their protocol enrolments and their own copy of each protocol's
    rules and measurement schedules, in one transaction.

    The external id is unique within the care team, enforced by the database: two racing
    enrolments of the same MRN in one team produce one patient and one DuplicatePatient,
    never two rows. Another team's patient with the same MRN is no duplicate: the caller
    must not learn that it exists.
    """
    try:
        with transaction.atomic():
            patient = Patient.objects.create(
                external_id=external_id,
                name=name,
                timezone=timezone,
                care_team=care_team,
                **(preferences or {}),
            )
            patient.protocols.set(Protocol.objects.for_codes(protocols))
            apply_protocols(patient=patient, codes=protocols)
            apply_protocol_schedules(patient=patient, codes=protocols)
    except IntegrityError as error:
        if Patient.objects.filter(care_team=care_team, external_id=external_id).exists():
            raise DuplicatePatient(external_id) from error
        raise
    return patient
