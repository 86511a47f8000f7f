"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views import billing

urlpatterns: list = [
    path(
        "patients/<int:patient_id>/billing",
        billing.PatientBillingApi.as_view(),
        name="patient-billing",
    ),
    path("billing/ledger", billing.BillingLedgerApi.as_view(), name="billing-ledger"),
]
