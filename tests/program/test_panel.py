"""program.panel: each column's exact value, the filters and the sorts.

The clock stands at 2026-03-10 15:00 UTC: 11:00 EDT in New York (summer time since 8 March),
16:00 CET in Berlin. Readings are posted through monitoring.ingest.record_readings.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from monitoring.models import NudgePurpose
from program.panel import (
    PanelFilters,
    UnknownTeam,
    month_bounds,
    panel_page,
    panel_standings,
    select,
    watched_metrics,
)
from tests.factories import MembershipFactory, NudgeFactory, UserFactory
from tests.program.panel_helpers import alert, enrol, log_time, post, review, start_episode

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def ny(day: int, hour: int = 8, minute: int = 0) -> datetime:
    """A local time in New York in March 2026 (EST before the 8th, EDT from it), as UTC."""
    offset = 5 if day < 8 else 4
    return datetime(2026, 3, day, minute=minute, tzinfo=UTC) + timedelta(hours=hour + offset)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def only_row(user, **kwargs):
    page = panel_page(user=user, **kwargs)
    assert len(page.rows) == 1
    return page.rows[0]


# --- Each column -----------------------------------------------------------------------------


def test_a_patients_row_holds_every_column(team, nurse, physician):
    # given: heart failure and hypertension, an episode from 1 March, device weights on the
    # 2nd and 3rd, a typed weight on the 4th, a device blood pressure on the 9th
    patient = enrol(team, protocols=["hypertension", "heart_failure"], name="Ada Example")
    start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
    post(patient, ny(2), value=80.0)
    post(patient, ny(3), value=80.5)
    post(patient, ny(4), value=81.0, device=False)
    post(patient, ny(9), type="blood_pressure", systolic=131, diastolic=84)
    alert(patient, severity="warning")
    alert(patient, severity="critical", status="acknowledged")
    alert(patient, severity="critical", status="resolved")
    log_time(patient, nurse, at=ny(5), minutes=12, interactive=True, approved_by=physician)
    log_time(patient, nurse, at=ny(9), minutes=5)
    log_time(patient, nurse, at=ny(9, 10), minutes=None)  # a running timer: no minutes yet
    log_time(patient, nurse, at=datetime(2026, 3, 1, 3, 0, tzinfo=UTC), minutes=30)  # 28 Feb
    review(patient, nurse, at=ny(8, 17))

    # when
    row = only_row(nurse)

    # then
    standing = row.standing
    assert standing.patient_id == patient.pk
    assert standing.name == "Ada Example"
    assert (standing.highest_severity, standing.open_alerts) == ("critical", 2)
    assert list(row.last_readings) == ["weight", "blood_pressure"]
    weight = row.last_readings["weight"]
    assert (weight.value, weight.unit, weight.measured_at) == (81.0, "kg", ny(4))
    assert weight.age(NOW) == NOW - ny(4)
    pressure = row.last_readings["blood_pressure"]
    assert (pressure.value, pressure.systolic, pressure.diastolic) == (None, 131.0, 84.0)
    assert (pressure.unit, pressure.measured_at) == ("mm[Hg]", ny(9))
    assert row.main_metric == "weight"
    assert row.trend == [80.0, 80.5, 81.0]
    # Days: the 2nd, 3rd and 9th (the typed weight of the 4th is not a transmission).
    assert standing.days_with_data == 3
    assert standing.period_end == date(2026, 3, 30)
    # 3 days in 9 past days, kept over the 21 days left: 10 < 16.
    assert (standing.reach, standing.at_risk) == ("at_risk", True)
    assert standing.minutes_this_month == 17
    assert standing.approved_minutes_this_month == 12
    assert standing.interactive_this_month is True
    assert standing.last_reviewed_at == ny(8, 17)
    assert standing.last_reviewed_by == "nurse"
    assert standing.last_data_at == ny(9)
    assert standing.no_data is False
    assert standing.needs_review is True


def test_a_patient_outside_the_program_and_without_data(team, nurse):
    patient = enrol(team, protocols=["diabetes"])

    row = only_row(nurse)

    assert row.standing.patient_id == patient.pk
    assert row.last_readings == {"glucose": None}
    assert (row.main_metric, row.trend) == ("glucose", [])
    standing = row.standing
    assert (standing.highest_severity, standing.open_alerts) == (None, 0)
    assert (standing.days_with_data, standing.period_end, standing.reach) == (None, None, None)
    assert standing.at_risk is False
    assert (standing.minutes_this_month, standing.interactive_this_month) == (0, False)
    assert (standing.last_reviewed_at, standing.last_reviewed_by) == (None, None)
    assert (standing.last_data_at, standing.no_data, standing.needs_review) == (None, True, False)


def test_a_patient_without_protocols_shows_no_metric(team, nurse):
    enrol(team)

    row = only_row(nurse)

    assert (row.last_readings, row.main_metric, row.trend) == ({}, None, [])


def test_the_last_reading_is_found_beyond_the_recent_window(team, nurse):
    patient = enrol(team, protocols=["anticoagulation"])
    post(patient, datetime(2025, 11, 2, 9, 0, tzinfo=UTC), type="inr", value=2.9)

    row = only_row(nurse)

    inr = row.last_readings["inr"]
    assert (inr.value, inr.unit, inr.measured_at) == (
        2.9,
        "{INR}",
        datetime(2025, 11, 2, 9, 0, tzinfo=UTC),
    )
    # Not recent: no trend, and "no data" (the window of the flags is the recent one).
    assert row.trend == []
    assert (row.standing.last_data_at, row.standing.no_data) == (None, True)


def test_the_trend_shows_the_last_values_of_the_main_metric_oldest_first(team, nurse):
    patient = enrol(team, protocols=["hypertension"])
    for day in range(1, 10):
        post(patient, ny(day), type="blood_pressure", systolic=120 + day, diastolic=80)
    post(patient, ny(9, 9), type="blood_pressure", systolic=150, diastolic=90)
    post(patient, ny(9, 10), type="blood_pressure", systolic=140, diastolic=88)

    row = only_row(nurse)

    # The last ten systolic values (TREND_POINTS): the 2nd to the 9th, then 150 and 140.
    assert row.trend == [122, 123, 124, 125, 126, 127, 128, 129, 150, 140]


def test_doses_are_neither_a_watched_metric_nor_data(team, nurse):
    assert watched_metrics(["anticoagulation", "copd"]) == [
        "inr",
        "spo2",
        "heart_rate",
        "temperature",
    ]
    assert watched_metrics(["copd", "anticoagulation"]) == watched_metrics(
        ["anticoagulation", "copd"]
    )


# --- Days with data ---------------------------------------------------------------------


def test_manual_readings_are_not_days_with_data(team, nurse, physician):
    patient = enrol(team, protocols=["heart_failure"])
    start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
    for day in (7, 8, 9):
        post(patient, ny(day), device=False)

    row = only_row(nurse)

    assert row.standing.days_with_data == 0
    assert row.last_readings["weight"].measured_at == ny(9)
    assert row.standing.no_data is False  # typed readings are data all the same


def test_days_are_counted_in_the_patients_zone(team, nurse, physician):
    # given: two readings on 9 March in New York, one of them 10 March in UTC
    patient = enrol(team, protocols=["heart_failure"])
    start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
    post(patient, ny(9, 9))
    post(patient, ny(9, 23, 30))  # 03:30 UTC on the 10th

    standing = only_row(nurse).standing

    assert standing.days_with_data == 1


def test_the_period_is_the_one_running_on_the_local_today(team, nurse, physician):
    # given: an episode whose second period begins on the patient's 10 March; in Tokyo it
    # is the 11th already (00:00 JST = 15:00 UTC)
    tokyo = enrol(team, protocols=["heart_failure"], timezone="Asia/Tokyo", name="Tokyo")
    start_episode(tokyo, start=date(2026, 2, 9), practitioner=physician)
    new_york = enrol(team, protocols=["heart_failure"], name="New York")
    start_episode(new_york, start=date(2026, 2, 9), practitioner=physician)

    rows = {row.standing.name: row.standing for row in panel_page(user=nurse).rows}

    assert (rows["New York"].period_end, rows["New York"].days_with_data) == (
        date(2026, 3, 10),
        0,
    )
    assert rows["New York"].reach == "cannot"
    assert rows["Tokyo"].period_end == date(2026, 4, 9)
    assert rows["Tokyo"].reach == "on_track"  # its first day: nothing missed yet


def test_an_ended_episode_has_no_running_period(team, nurse, physician):
    patient = enrol(team, protocols=["heart_failure"])
    start_episode(patient, start=date(2026, 2, 1), end=date(2026, 3, 9), practitioner=physician)
    post(patient, ny(9))

    standing = only_row(nurse).standing

    assert (standing.days_with_data, standing.period_end, standing.at_risk) == (None, None, False)


def test_the_outreach_jobs_nudge_of_the_local_today_is_shown(team, nurse, physician):
    # given: encouraged yesterday and today (New York), as program.outreach writes them
    patient = enrol(team, protocols=["heart_failure"])
    start_episode(patient, start=date(2026, 3, 1), practitioner=physician)
    for day, status in ((date(2026, 3, 9), "sent"), (date(2026, 3, 10), "pending")):
        NudgeFactory(
            patient=patient, purpose=NudgePurpose.KEEP_SENDING, local_day=day, status=status
        )
    NudgeFactory(patient=enrol(team, name="Reminded"), purpose="measurement_due")

    rows = {row.standing.patient_id: row for row in panel_page(user=nurse).rows}

    assert rows[patient.pk].keep_sending_nudge == "pending"
    assert [row.keep_sending_nudge for pk, row in rows.items() if pk != patient.pk] == [None]


# --- Minutes in the patient's month -----------------------------------------------------


def test_minutes_count_the_calendar_month_in_the_patients_zone(team, nurse):
    # 1 March 03:00 UTC is 28 February 22:00 in New York, 1 March 04:00 in Berlin.
    at = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    new_york = enrol(team, name="New York")
    berlin = enrol(team, name="Berlin", timezone="Europe/Berlin")
    for patient in (new_york, berlin):
        log_time(patient, nurse, at=at, minutes=7, interactive=True)
        log_time(patient, nurse, at=ny(9), minutes=4)

    rows = {row.standing.name: row.standing for row in panel_page(user=nurse).rows}

    assert (rows["New York"].minutes_this_month, rows["New York"].interactive_this_month) == (
        4,
        False,
    )
    assert (rows["Berlin"].minutes_this_month, rows["Berlin"].interactive_this_month) == (
        11,
        True,
    )


def test_month_bounds_cross_the_year():
    start, following = month_bounds("Europe/Berlin", datetime(2026, 12, 31, 23, 30, tzinfo=UTC))

    assert (start.isoformat(), following.isoformat()) == (
        "2027-01-01T00:00:00+01:00",
        "2027-02-01T00:00:00+01:00",
    )


# --- Review ---------------------------------------------------------------------------


def test_a_review_after_the_newest_data_clears_needs_review(team, nurse, physician):
    patient = enrol(team, protocols=["heart_failure"])
    post(patient, ny(9))
    review(patient, nurse, at=ny(8))
    review(patient, physician, at=ny(9, 12))

    standing = only_row(nurse).standing

    assert (standing.last_reviewed_at, standing.last_reviewed_by) == (ny(9, 12), "physician")
    assert standing.needs_review is False


def test_an_unresolved_alert_needs_review_whatever_the_review(team, nurse):
    patient = enrol(team, protocols=["heart_failure"])
    alert(patient, severity="info", status="acknowledged")
    review(patient, nurse, at=ny(10, 10))

    standing = only_row(nurse).standing

    assert (standing.highest_severity, standing.open_alerts, standing.needs_review) == (
        "info",
        1,
        True,
    )


# --- Filters and sorts ------------------------------------------------------------------


@pytest.fixture
def panel(team, nurse, physician):
    """Five patients, each standing out in one way."""
    quiet = enrol(team, protocols=["heart_failure"], name="Quiet")  # last data 4 days ago
    post(quiet, NOW - timedelta(days=4))
    review(quiet, nurse, at=NOW - timedelta(days=1))
    critical = enrol(team, protocols=["heart_failure"], name="Critical")
    post(critical, NOW - timedelta(hours=2))
    alert(critical, severity="critical")
    review(critical, nurse, at=NOW - timedelta(hours=1))
    risky = enrol(team, protocols=["heart_failure"], name="risky")  # lower case: sorts by casefold
    start_episode(risky, start=date(2026, 3, 1), practitioner=physician)
    post(risky, ny(10, 9))  # today
    review(risky, nurse, at=NOW - timedelta(days=10))
    log_time(risky, nurse, at=ny(3), minutes=15, interactive=True)
    steady = enrol(team, protocols=["heart_failure"], name="Steady")
    start_episode(steady, start=date(2026, 3, 1), practitioner=physician)
    for day in range(1, 11):
        post(steady, ny(day))
    review(steady, nurse, at=NOW)
    log_time(steady, nurse, at=ny(3), minutes=25, interactive=True)
    warning = enrol(team, protocols=["heart_failure"], name="Warning")
    post(warning, NOW - timedelta(hours=30))
    alert(warning, severity="warning")
    log_time(warning, nurse, at=ny(3), minutes=3)
    return {"quiet": quiet, "critical": critical, "risky": risky, "steady": steady}


def names(user, **kwargs) -> list[str]:
    return [row.standing.name for row in panel_page(user=user, **kwargs).rows]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (PanelFilters(), ["Critical", "Quiet", "risky", "Steady", "Warning"]),
        (PanelFilters(needs_review=True), ["Critical", "risky", "Warning"]),
        (PanelFilters(no_data=True), ["Quiet"]),
        (PanelFilters(at_risk=True), ["risky"]),
        # Only patients in the program: Warning's 3 minutes are not billable time.
        (PanelFilters(minutes_below=20), ["risky"]),
        (PanelFilters(minutes_below=10), []),
        (PanelFilters(needs_review=True, at_risk=True), ["risky"]),
    ],
)
def test_filters(panel, nurse, filters, expected):
    assert names(nurse, filters=filters, sort="name") == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Critical", "Quiet", "risky", "Steady", "Warning"]),
        ("-name", ["Warning", "Steady", "risky", "Quiet", "Critical"]),
        ("severity", ["Critical", "Warning", "Quiet", "risky", "Steady"]),
        ("needs_review", ["Critical", "Warning", "risky", "Quiet", "Steady"]),
        # Steady's last weight is 12:00 UTC today, Critical's and risky's 13:00 (then by name).
        ("no_data", ["Quiet", "Warning", "Steady", "Critical", "risky"]),
        ("at_risk", ["risky", "Steady", "Critical", "Quiet", "Warning"]),
        ("minutes", ["risky", "Steady", "Critical", "Quiet", "Warning"]),
        ("-minutes", ["Warning", "Critical", "Quiet", "Steady", "risky"]),
        ("last_reviewed", ["Warning", "risky", "Quiet", "Critical", "Steady"]),
    ],
)
def test_sorts(panel, nurse, sort, expected):
    assert names(nurse, sort=sort) == expected


def test_pages_keep_the_order(panel, nurse):
    first = panel_page(user=nurse, sort="name", page=1, page_size=2)
    last = panel_page(user=nurse, sort="name", page=3, page_size=2)

    assert [row.standing.name for row in first.rows] == ["Critical", "Quiet"]
    assert (first.count, first.num_pages, first.has_next, first.has_previous) == (5, 3, True, False)
    assert [row.standing.name for row in last.rows] == ["Warning"]


# --- Whose patients -------------------------------------------------------------------


def test_another_teams_patients_are_never_shown(team, other_team, nurse, outsider):
    mine = enrol(team, name="Mine")
    enrol(other_team, name="Theirs")

    assert names(nurse) == ["Mine"]
    assert names(outsider) == ["Theirs"]
    with pytest.raises(UnknownTeam):
        panel_standings(user=nurse, team_id=other_team.pk, now=NOW)
    assert [row.patient_id for row in panel_standings(user=nurse, team_id=team.pk, now=NOW)] == [
        mine.pk
    ]


def test_one_team_of_several(team, other_team, nurse):
    MembershipFactory(team=other_team, user=nurse)
    enrol(team, name="First team")
    enrol(other_team, name="Second team")

    assert names(nurse, sort="name") == ["First team", "Second team"]
    assert names(nurse, team_id=other_team.pk) == ["Second team"]


def test_a_user_in_no_team_sees_nobody(team):
    enrol(team)

    assert names(UserFactory(username="visitor")) == []


def test_a_superuser_sees_every_team(team, other_team, superuser):
    enrol(team, name="First team")
    enrol(other_team, name="Second team")

    assert names(superuser, sort="name") == ["First team", "Second team"]


def test_select_keeps_name_order_for_ties(team, nurse):
    for name in ("b", "A", "c"):
        enrol(team, name=name)

    standings = panel_standings(user=nurse, now=NOW)

    assert [row.name for row in select(standings, filters=PanelFilters())] == ["A", "b", "c"]
    reversed_rows = select(standings, filters=PanelFilters(), sort="-severity")
    assert [row.name for row in reversed_rows] == ["A", "b", "c"]


def test_no_data_counts_the_configured_days(team, nurse, settings):
    patient = enrol(team, protocols=["heart_failure"])
    post(patient, NOW - timedelta(days=4))

    assert only_row(nurse).standing.no_data is True
    settings.VIGIL_PANEL_NO_DATA_DAYS = 5
    assert only_row(nurse).standing.no_data is False
    assert panel_page(user=nurse, filters=PanelFilters(no_data=True)).rows == []
