"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views import billing, episodes, time_entries
from program.views.panel import PanelApi
from program.views.reviews import PatientReviewCreateApi

urlpatterns: list = [
    path(
        "patients/<int:patient_id>/reviews",
        PatientReviewCreateApi.as_view(),
        name="patient-reviews",
    ),
    path(
        "patients/<int:patient_id>/billing",
        billing.PatientBillingApi.as_view(),
        name="patient-billing",
    ),
    path("billing/ledger", billing.BillingLedgerApi.as_view(), name="billing-ledger"),
    path(
        "patients/<int:patient_id>/episodes",
        episodes.PatientEpisodeListCreateApi.as_view(),
        name="patient-episodes",
    ),
    path(
        "patients/<int:patient_id>/episodes/<int:episode_id>",
        episodes.PatientEpisodeEndApi.as_view(),
        name="patient-episode-detail",
    ),
    path(
        "patients/<int:patient_id>/time-entries",
        time_entries.PatientTimeEntryListCreateApi.as_view(),
        name="patient-time-entries",
    ),
    path(
        "time-entries/<int:entry_id>/approve",
        time_entries.TimeEntryApproveApi.as_view(),
        name="time-entry-approve",
    ),
    path("panel", PanelApi.as_view(), name="panel"),
]
