"""interop's URLs, included at the root (config/urls.py).

FHIR R4 under /fhir. Nightscout: the staff endpoint under /api/v1/, and each patient's
Nightscout API v1 under its base URL /nightscout/<slug>/ (`.json` optional and a trailing
slash allowed, as Nightscout's routes take them: uploaders differ in which they send).
"""

from django.urls import include, path, re_path

from interop.views import fhir, nightscout

fhir_patterns = [
    path("", fhir.bundle),
    path("metadata", fhir.metadata, name="fhir-metadata"),
    path("Patient", fhir.patient_search, name="fhir-patient-search"),
    path("Patient/<str:patient_id>", fhir.patient_read, name="fhir-patient-read"),
    path("Observation", fhir.observations, name="fhir-observations"),
    path("Observation/<str:observation_id>", fhir.observation_read, name="fhir-observation-read"),
]

BASE = r"^nightscout/(?P<slug>[A-Za-z0-9_-]{1,32})/api/v1/"

urlpatterns = [
    # The FHIR base itself takes the batch/transaction POST: /fhir, no slash redirect.
    path("fhir", fhir.bundle, name="fhir-bundle"),
    path("fhir/", include(fhir_patterns)),
    path(
        "api/v1/patients/<int:patient_id>/nightscout",
        nightscout.PatientNightscoutApi.as_view(),
        name="patient-nightscout",
    ),
    re_path(BASE + r"status(?:\.json)?/?$", nightscout.StatusView.as_view(), name="ns-status"),
    re_path(
        BASE + r"verifyauth(?:\.json)?/?$",
        nightscout.VerifyAuthView.as_view(),
        name="ns-verifyauth",
    ),
    re_path(
        BASE + r"experiments/test(?:\.json)?/?$",
        nightscout.ExperimentsTestView.as_view(),
        name="ns-experiments-test",
    ),
    re_path(BASE + r"entries(?:\.json)?/?$", nightscout.EntriesView.as_view(), name="ns-entries"),
    re_path(
        BASE + r"entries/(?P<kind>sgv|mbg|cal|current)(?:\.json)?/?$",
        nightscout.EntriesView.as_view(),
        name="ns-entries-kind",
    ),
    re_path(
        BASE + r"treatments(?:\.json)?/?$",
        nightscout.TreatmentsView.as_view(),
        name="ns-treatments",
    ),
    re_path(
        BASE + r"devicestatus(?:\.json)?/?$",
        nightscout.DeviceStatusView.as_view(),
        name="ns-devicestatus",
    ),
]
