"""Search: Observations of a patient by code and date, newest first, and Patients by
identifier, as searchset Bundles.

Observation pages are keyset pages on (measured_at, id), the order of the
reading_patient_time index (reading_patient_metric_time with a code): a page costs the same
on a patient's first day and after ten years of readings, and no COUNT of the history is
taken (Bundle.total is left out, which FHIR allows).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.utils.dateparse import parse_date, parse_datetime

from interop.fhir import codes
from interop.fhir.access import reachable_patients
from interop.fhir.observations import PATIENT_REFERENCE, to_observation
from interop.fhir.outcomes import FhirError
from monitoring.models import Metric, Patient, Reading

DEFAULT_COUNT = 50
MAX_COUNT = 500
DATE_PREFIXES = {"ge": "gte", "gt": "gt", "le": "lte", "lt": "lt"}


@dataclass(frozen=True)
class ObservationQuery:
    patient_id: int | None
    metrics: frozenset[str] | None
    dates: tuple[tuple[str, datetime], ...]
    count: int
    after: tuple[datetime, int] | None


def _one(params, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise FhirError.one(400, f"'{name}' may be given once.", name)
    return values[0] if values else None


def _instant(text: str, name: str, *, upper: bool) -> datetime:
    try:
        moment = parse_datetime(text) if "T" in text else None
        if moment is not None and moment.tzinfo is None:
            moment = None
        if "T" not in text and len(text) == 10 and parse_date(text) is not None:
            # A bare date is that UTC day (FHIR leaves a date without zone to the server).
            moment = datetime.fromisoformat(f"{text}T00:00:00+00:00")
            if upper:
                moment += timedelta(days=1, microseconds=-1)
    except (ValueError, OverflowError):  # well-formed but impossible: month 13, Feb 30
        moment = None
    if moment is None:
        raise FhirError.one(
            400,
            f"'{text}' is not a date (YYYY-MM-DD) or a date-time with a UTC offset.",
            name,
        )
    return moment


def parse_observation_query(params, *, own_patient_id: int | None) -> ObservationQuery:
    """The query /fhir/Observation was asked, or FhirError(400) naming the parameter."""
    known = {"patient", "subject", "code", "date", "_count", "_sort", "_cursor", "_format"}
    for name in params:
        if name not in known:
            raise FhirError.one(
                400, f"Unknown search parameter '{name}'.", name, code="not-supported"
            )
    patient_id = own_patient_id
    reference = _one(params, "patient") or _one(params, "subject")
    if reference is not None:
        match = PATIENT_REFERENCE.search(reference) or (
            PATIENT_REFERENCE.search(f"Patient/{reference}")
            if reference.isascii() and reference.isdigit()
            else None
        )
        if match is None:
            raise FhirError.one(400, "Must be Patient/{id}.", "patient")
        patient_id = int(match["id"])
    metrics = None
    code = _one(params, "code")
    if code is not None:
        metrics = set()
        for token in code.split(","):
            system, _, value = token.rpartition("|")
            if system not in ("", codes.LOINC):
                raise FhirError.one(400, f"Only LOINC codes ({codes.LOINC}) are searched.", "code")
            metric = codes.metric_by_code().get(value)
            if metric is None:
                raise FhirError.one(
                    400, f"'{value}' is not a LOINC code of a metric Vigil monitors.", "code"
                )
            metrics.add(metric)
    dates = []
    for value in params.getlist("date"):
        prefix, rest = value[:2], value[2:]
        if prefix not in DATE_PREFIXES:
            raise FhirError.one(400, "Use date=ge…, gt…, le… or lt….", "date")
        dates.append((DATE_PREFIXES[prefix], _instant(rest, "date", upper=prefix in ("le", "gt"))))
    sort = _one(params, "_sort")
    if sort not in (None, "-date"):
        raise FhirError.one(400, "Only _sort=-date (newest first) is supported.", "_sort")
    return ObservationQuery(
        patient_id=patient_id,
        metrics=frozenset(metrics) if metrics is not None else None,
        dates=tuple(dates),
        count=_count(_one(params, "_count")),
        after=_cursor(_one(params, "_cursor")),
    )


def _count(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_COUNT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_COUNT):
        raise FhirError.one(400, f"_count must be a whole number from 1 to {MAX_COUNT}.", "_count")
    return int(raw)


def encode_cursor(reading: Reading) -> str:
    raw = json.dumps([reading.measured_at.isoformat(), reading.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(raw: str | None) -> tuple[datetime, int] | None:
    if raw is None:
        return None
    try:
        moment, pk = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        parsed = datetime.fromisoformat(moment)
        # A bigint id: anything else would reach the query and fail there.
        if not isinstance(pk, int) or not 0 < pk < 2**63 or parsed.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise FhirError.one(400, "_cursor is not one this server issued.", "_cursor") from None
    return parsed, pk


def search_observations(*, principal, query: ObservationQuery) -> tuple[list[Reading], bool]:
    """One page of the patient's readings (measurements, not doses), newest first, and
    whether another page follows. FhirError(404) if the patient is not reachable."""
    if query.patient_id is None:
        raise FhirError.one(
            400, "Name the patient: patient=Patient/{id}.", "patient", code="required"
        )
    if not reachable_patients(principal).filter(pk=query.patient_id).exists():
        raise FhirError.one(
            404, f"Patient/{query.patient_id} is not known.", "patient", code="not-found"
        )
    readings = Reading.objects.filter(patient_id=query.patient_id)
    if query.metrics is not None:
        readings = readings.filter(metric__in=query.metrics)
    else:
        readings = readings.exclude(metric=Metric.DOSE)
    for lookup, moment in query.dates:
        readings = readings.filter(**{f"measured_at__{lookup}": moment})
    if query.after is not None:
        moment, pk = query.after
        readings = readings.filter(Q(measured_at__lt=moment) | Q(measured_at=moment, id__lt=pk))
    page = list(readings.order_by("-measured_at", "-id")[: query.count + 1])
    return page[: query.count], len(page) > query.count


def next_link(base_url: str, params, last: Reading) -> str:
    kept = [
        (name, value) for name, values in params.lists() if name != "_cursor" for value in values
    ]
    return f"{base_url}?{urlencode([*kept, ('_cursor', encode_cursor(last))])}"


def searchset(*, self_url: str, resources: list[dict], next_url: str | None, base: str) -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }


def observation_bundle(*, principal, params, self_url: str, base: str, own_patient_id) -> dict:
    """{"bundle": the searchset, "patient_id": whose readings it shows}."""
    query = parse_observation_query(params, own_patient_id=own_patient_id)
    page, more = search_observations(principal=principal, query=query)
    next_url = next_link(self_url.split("?")[0], params, page[-1]) if more and page else None
    bundle = searchset(
        self_url=self_url,
        resources=[to_observation(reading) for reading in page],
        next_url=next_url,
        base=base,
    )
    return {"bundle": bundle, "patient_id": query.patient_id}


# --- Patients -----------------------------------------------------------------------------


def patient_identifier_system() -> str:
    """The system of Vigil's patient identifiers (Patient.external_id, unique per team):
    the configured address, not the request's, so it is the same however a client came."""
    return f"{settings.VIGIL_BASE_URL}/fhir/sid/patient-external-id"


def to_patient(patient: Patient) -> dict:
    return {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "identifier": [{"system": patient_identifier_system(), "value": patient.external_id}],
        "name": [{"text": patient.name}],
        "active": True,
    }


def find_patients(*, principal, params) -> list[Patient]:
    for name in params:
        if name not in ("identifier", "_format"):
            raise FhirError.one(
                400, f"Unknown search parameter '{name}'.", name, code="not-supported"
            )
    identifier = _one(params, "identifier")
    if identifier is None:
        raise FhirError.one(400, "Search patients by identifier={system}|{value}.", "identifier")
    system, bar, value = identifier.rpartition("|")
    if bar and system not in ("", patient_identifier_system()):
        return []  # a system Vigil does not issue names none of its patients
    return list(
        reachable_patients(principal)
        .filter(external_id=value)
        .order_by("pk")
        .distinct()[:MAX_COUNT]
    )
