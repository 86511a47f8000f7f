"""alerts/admin.py, the care team's page: its paging policy, including whether the team is
paged for info alerts (off unless the team turns it on)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from alerts.models import CareTeam
from tests.factories import CareTeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def policy(**changes) -> dict:
    """The change form as posted, with no members (the inline's management form only)."""
    return {
        "name": "Anticoagulation clinic",
        "critical_escalation_minutes": "15",
        "warning_escalation_minutes": "240",
        "repeat_minutes": "60",
        "max_repeats": "3",
        "webhook_url": "",
        "webhook_secret": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **changes,
    }


def test_a_new_team_is_not_paged_for_info_alerts():
    assert CareTeamFactory().page_info_alerts is False


def test_the_team_page_turns_paging_for_info_alerts_on_and_off(root):
    team = CareTeamFactory(name="Anticoagulation clinic")
    url = reverse("admin:alerts_careteam_change", args=[team.pk])

    page = root.get(url)
    assert page.status_code == 200
    assert '<input type="checkbox" name="page_info_alerts"' in page.content.decode()

    turned_on = root.post(url, policy(page_info_alerts="on"))
    assert turned_on.status_code == 302
    assert CareTeam.objects.get(pk=team.pk).page_info_alerts is True

    turned_off = root.post(url, policy())
    assert turned_off.status_code == 302
    assert CareTeam.objects.get(pk=team.pk).page_info_alerts is False
