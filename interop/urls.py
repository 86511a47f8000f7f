"""Interoperability endpoints, mounted at the root by config.urls: FHIR R4 under /fhir."""

from django.urls import include, path

from interop.views import fhir

fhir_patterns = [
    path("", fhir.bundle),
    path("metadata", fhir.metadata, name="fhir-metadata"),
    path("Patient", fhir.patient_search, name="fhir-patient-search"),
    path("Patient/<str:patient_id>", fhir.patient_read, name="fhir-patient-read"),
    path("Observation", fhir.observations, name="fhir-observations"),
    path("Observation/<str:observation_id>", fhir.observation_read, name="fhir-observation-read"),
]

urlpatterns = [
    # The FHIR base itself takes the batch/transaction POST: /fhir, no slash redirect.
    path("fhir", fhir.bundle, name="fhir-bundle"),
    path("fhir/", include(fhir_patterns)),
]
