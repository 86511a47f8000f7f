"""Per-rule statistics on the rule's page (program.rule_statistics, issue 13.3): for one
patient's rule and for its protocol template across the viewer's teams — alerts raised and
their rate per 30 days, the median time to acknowledge, the resolutions by reason and the
share of false alarms, over the last 90 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from alerts.models import AlertStatus
from monitoring.patient_rules import apply_protocols
from program.rule_statistics import WINDOW_DAYS, describe_duration, rule_statistics
from tests.factories import AlertEventFactory, AlertFactory, PatientFactory, RuleFactory

NOW = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
KEY = "hypoglycemia_level_2"
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def copy_of_template(patient):
    """The patient's own copy of the diabetes protocol's level 2 hypoglycaemia rule."""
    apply_protocols(patient=patient, codes=["diabetes"])
    return patient.rules.get(key=KEY)


def alert(rule, *, ago: timedelta, acknowledged_after=None, reason=None, raised_event=True):
    """An alert of `rule` raised `ago` before NOW; resolved with `reason` unless None (open)."""
    raised_at = NOW - ago
    made = AlertFactory(
        patient=rule.patient,
        rule=rule,
        dedupe_key=f"{rule.group}-{ago}",
        first_triggered_at=raised_at,
        status=AlertStatus.OPEN if reason is None else AlertStatus.RESOLVED,
        resolution_reason=reason or "",
    )
    if raised_event:
        AlertEventFactory(alert=made, kind="raised", at=raised_at)
    if acknowledged_after is not None:
        AlertEventFactory(alert=made, kind="acknowledged", at=raised_at + acknowledged_after)
        # A second acknowledgement (after a worse finding re-opened it) does not count.
        AlertEventFactory(alert=made, kind="acknowledged", at=raised_at + 10 * DAY)
    return made


@pytest.fixture
def clinic(team, other_team, patient):
    """The patient's copy with six alerts in the window and one before it; a second patient
    of the team with one alert, a third with none; a patient of another team; and a rule a
    clinician added with the same key (no protocol default)."""
    own = copy_of_template(patient)
    alert(own, ago=10 * DAY, acknowledged_after=10 * MIN, reason="false_alarm")
    alert(own, ago=20 * DAY, acknowledged_after=30 * MIN, reason="false_alarm")
    alert(own, ago=40 * DAY, acknowledged_after=120 * MIN, reason="contacted_patient")
    alert(own, ago=50 * DAY, reason="")  # resolved through the API without a reason
    alert(own, ago=60 * DAY, reason="expired")
    alert(own, ago=1 * DAY)  # still open
    alert(own, ago=100 * DAY, acknowledged_after=MIN, reason="false_alarm")  # before the window

    second = copy_of_template(PatientFactory(care_team=team))
    alert(second, ago=5 * DAY, acknowledged_after=60 * MIN, reason="no_action_needed")
    copy_of_template(PatientFactory(care_team=team))

    elsewhere = copy_of_template(PatientFactory(care_team=other_team))
    alert(elsewhere, ago=3 * DAY, acknowledged_after=5 * MIN, reason="false_alarm")

    added = RuleFactory(patient=PatientFactory(care_team=team), key=KEY, kind="threshold")
    alert(added, ago=2 * DAY, acknowledged_after=MIN, reason="false_alarm")
    return own


def by_reason(figures) -> dict[str, int]:
    return {reason.reason: reason.count for reason in figures.reasons}


def test_the_rules_own_figures(clinic, nurse):
    stats = rule_statistics(rule=clinic, user=nurse, now=NOW)

    own = stats.rule
    assert (stats.days, stats.since) == (90, NOW - 90 * DAY)
    assert (own.rules, own.patients, own.alerts) == (1, 1, 6)
    assert own.per_rule_per_30_days == 2.0
    # 10, 30 and 120 minutes to the first acknowledgement.
    assert (own.acknowledged, own.median_to_acknowledge) == (3, 30 * MIN)
    assert own.resolved == 5
    assert by_reason(own) == {
        "contacted_patient": 1,
        "escalated": 0,
        "no_action_needed": 0,
        "false_alarm": 2,
        "expired": 1,
        "": 1,
    }
    # Among the three a person resolved with a reason.
    assert (own.false_alarms, own.decided, own.false_alarm_share) == (2, 3, 2 / 3)


def test_the_templates_figures_across_the_viewers_teams(clinic, nurse):
    template = rule_statistics(rule=clinic, user=nurse, now=NOW).template

    # Three copies in the nurse's team; the other team's and the clinician's rule left out.
    assert (template.rules, template.patients, template.alerts) == (3, 2, 7)
    assert template.per_rule_per_30_days == pytest.approx(7 * 30 / 90 / 3)
    # 10, 30, 60 and 120 minutes: the median halfway between 30 and 60.
    assert (template.acknowledged, template.median_to_acknowledge) == (4, 45 * MIN)
    assert template.resolved == 6
    assert by_reason(template) == {
        "contacted_patient": 1,
        "escalated": 0,
        "no_action_needed": 1,
        "false_alarm": 2,
        "expired": 1,
        "": 1,
    }
    assert (template.false_alarms, template.decided, template.false_alarm_share) == (2, 4, 0.5)


def test_a_superuser_sees_the_template_across_every_team(clinic, superuser):
    template = rule_statistics(rule=clinic, user=superuser, now=NOW).template

    assert (template.rules, template.patients, template.alerts) == (4, 3, 8)
    assert (template.false_alarms, template.decided) == (3, 5)
    assert template.median_to_acknowledge == 30 * MIN  # 5, 10, 30, 60, 120


def test_a_rule_added_for_the_patient_has_no_template(patient, nurse):
    added = RuleFactory(patient=patient)
    alert(added, ago=DAY, acknowledged_after=15 * MIN)

    stats = rule_statistics(rule=added, user=nurse, now=NOW)

    assert stats.template is None
    assert (stats.rule.alerts, stats.rule.median_to_acknowledge) == (1, 15 * MIN)


def test_no_alerts_no_figures(patient, nurse):
    rule = copy_of_template(patient)

    own = rule_statistics(rule=rule, user=nurse, now=NOW).rule

    assert (own.alerts, own.per_rule_per_30_days, own.acknowledged) == (0, 0.0, 0)
    assert (own.median_to_acknowledge, own.false_alarm_share) == (None, None)
    assert own.median_to_acknowledge_text == "—"


def test_without_its_raised_event_an_alert_is_timed_from_its_creation(patient, nurse):
    rule = RuleFactory(patient=patient)
    # created_at is NOW (the frozen clock), whatever first_triggered_at says.
    alert(rule, ago=DAY, acknowledged_after=DAY + 25 * MIN, raised_event=False)

    own = rule_statistics(rule=rule, user=nurse, now=NOW).rule

    assert own.median_to_acknowledge == 25 * MIN


def test_the_figures_cost_five_queries_whatever_the_history(
    clinic, nurse, django_assert_num_queries
):
    for days in range(11, 19):
        alert(clinic, ago=days * DAY + 1 * MIN, acknowledged_after=MIN, reason="escalated")

    # The rule's counts and times (2); the template's copies, counts and times (3).
    with django_assert_num_queries(5):
        stats = rule_statistics(rule=clinic, user=nurse, now=NOW)

    assert stats.rule.alerts == 14


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "0 min"), (14, "14 min"), (125, "2 h 05 min"), (60 * 24 * 3 + 61, "3 d 1 h")],
)
def test_durations_are_written_as_a_clinician_reads_them(minutes, text):
    assert describe_duration(timedelta(minutes=minutes)) == text


# --- The rule page ------------------------------------------------------------------------


def test_the_rule_page_shows_the_figures_beside_the_templates(clinic, nurse):
    client = Client()
    client.force_login(nurse)

    response = client.get(
        reverse("admin:monitoring_patient_rule", args=[clinic.patient_id, clinic.pk])
    )

    assert response.status_code == 200
    assert response.context["statistics"].rule.alerts == 6
    html = response.content.decode()
    assert f"How it behaves: the last {WINDOW_DAYS} days" in html
    assert "<td>6</td><td>7 (2 patients)</td>" in html
    assert "<td>2.0</td><td>0.78</td>" in html
    assert "<td>30 min (3 acknowledged)</td><td>45 min (4 acknowledged)</td>" in html
    assert "<td>2 of 3 (67%)</td>" in html
    assert "<td>2 of 4 (50%)</td>" in html
    assert '<tr data-reason="false_alarm"><td>False alarm</td><td>2</td><td>2</td></tr>' in html
    assert '<tr data-reason="none"><td>No reason recorded</td><td>1</td><td>1</td></tr>' in html
