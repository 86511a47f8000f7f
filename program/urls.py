"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views import billing
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
]
