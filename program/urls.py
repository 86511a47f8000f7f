"""The program's API under /api/v1/ (docs/api.md, "The RPM program")."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
