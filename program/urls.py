"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views.panel import PanelApi
from program.views.reviews import PatientReviewCreateApi

urlpatterns: list = [
    path(
        "patients/<int:patient_id>/reviews",
        PatientReviewCreateApi.as_view(),
        name="patient-reviews",
    ),
    path("panel", PanelApi.as_view(), name="panel"),
]
