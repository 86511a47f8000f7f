"""Who reaches which patient through /fhir: the REST API's reach (docs/api.md)."""

from __future__ import annotations

from monitoring.auth import PatientPrincipal
from monitoring.models import Patient


def reachable_patients(principal):
    """A patient token or device key: its own patient; staff: their care teams' patients
    (every patient for a superuser), as Patient.objects.visible_to decides for the REST API."""
    if isinstance(principal, PatientPrincipal):
        return Patient.objects.filter(pk=principal.patient.pk)
    return Patient.objects.visible_to(principal)
