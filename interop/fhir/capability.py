"""The CapabilityStatement /fhir/metadata serves: what this server does, for clients."""

from __future__ import annotations

from django.conf import settings

from interop.fhir import codes


def capability_statement(*, base: str, released: str) -> dict:
    observation_search = [
        {"name": "patient", "type": "reference"},
        {"name": "code", "type": "token"},
        {"name": "date", "type": "date"},
        {"name": "_count", "type": "number"},
        {"name": "_sort", "type": "string", "documentation": "Only -date (newest first)."},
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "kind": "instance",
        "software": {"name": "Vigil"},
        "implementation": {"description": "Vigil remote patient monitoring", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": (
                        "Authorization: Bearer <token> — a staff token (the caller's care "
                        "teams' patients), a patient app token or a device key (its patient)."
                    )
                },
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": "identifier", "type": "token"}],
                    },
                    {
                        "type": "Observation",
                        "profile": codes.VITAL_SIGNS_PROFILE,
                        "interaction": [
                            {"code": "read"},
                            {"code": "create"},
                            {"code": "search-type"},
                        ],
                        "conditionalCreate": True,
                        "searchParam": observation_search,
                    },
                ],
                "interaction": [
                    {
                        "code": "batch",
                        "documentation": f"Up to {settings.VIGIL_MAX_BATCH} Observation POSTs.",
                    },
                    {
                        "code": "transaction",
                        "documentation": f"Up to {settings.VIGIL_MAX_BATCH} Observation POSTs.",
                    },
                ],
            }
        ],
    }
