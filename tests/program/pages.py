"""The admin pages the program's tests open, as a signed-in member would."""

from django.test import Client
from django.urls import reverse


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def patient_page(patient) -> str:
    return reverse("admin:monitoring_patient_change", args=[patient.pk])


def alert_page(alert) -> str:
    return reverse("admin:alerts_alert_change", args=[alert.pk])
