from django.urls import path

from monitoring import views

urlpatterns = [
    path("auth/token", views.StaffTokenCreateRevokeApi.as_view(), name="auth-token"),
    path("me", views.MeApi.as_view(), name="me"),
    path("readings", views.ReadingListCreateApi.as_view(), name="readings"),
    path("nudges", views.NudgeListApi.as_view(), name="nudges"),
    path("nudges/<int:nudge_id>/opened", views.NudgeOpenedApi.as_view(), name="nudge-opened"),
    path("push-tokens", views.PushTokenApi.as_view(), name="push-tokens"),
    path("patients", views.PatientListCreateApi.as_view(), name="patients"),
    path("patients/<int:patient_id>", views.PatientDetailApi.as_view(), name="patient-detail"),
    path(
        "patients/<int:patient_id>/readings",
        views.PatientReadingListApi.as_view(),
        name="patient-readings",
    ),
    path(
        "patients/<int:patient_id>/tokens",
        views.AppTokenCreateApi.as_view(),
        name="patient-tokens",
    ),
    path(
        "patients/<int:patient_id>/tokens/<int:token_id>",
        views.AppTokenRevokeApi.as_view(),
        name="patient-token-detail",
    ),
    path(
        "patients/<int:patient_id>/rules",
        views.PatientRuleListCreateApi.as_view(),
        name="patient-rules",
    ),
    path(
        "patients/<int:patient_id>/rules/<int:rule_id>",
        views.PatientRuleChangeApi.as_view(),
        name="patient-rule-detail",
    ),
    path(
        "patients/<int:patient_id>/devices",
        views.DeviceCreateApi.as_view(),
        name="patient-devices",
    ),
    path(
        "patients/<int:patient_id>/devices/<int:device_id>",
        views.DeviceRevokeApi.as_view(),
        name="patient-device-detail",
    ),
    path(
        "patients/<int:patient_id>/schedules",
        views.PatientScheduleListCreateApi.as_view(),
        name="patient-schedules",
    ),
    path(
        "patients/<int:patient_id>/schedules/<int:schedule_id>",
        views.PatientScheduleChangeDeleteApi.as_view(),
        name="patient-schedule-detail",
    ),
    path(
        "patients/<int:patient_id>/medications",
        views.PatientMedicationPlanListCreateApi.as_view(),
        name="patient-medications",
    ),
    path(
        "patients/<int:patient_id>/medications/<int:plan_id>",
        views.PatientMedicationPlanChangeDeleteApi.as_view(),
        name="patient-medication-detail",
    ),
]
