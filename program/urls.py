"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path

from program.views.panel import PanelApi

urlpatterns: list = [
    path("panel", PanelApi.as_view(), name="panel"),
]
