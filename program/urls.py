"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views import episodes, time_entries

urlpatterns: list = [
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
]
