"""The patient page's period, summaries and names (issue 14.3 and 14.5): the date-range
selector, the AGP and time-in-ranges bar from sensor readings only, the blood-pressure
summary, summaries only for what the patient is monitored for, sufficiency caveats, and the
patient's name in titles and breadcrumbs — through the admin's own URLs, on PostgreSQL."""

# Fixtures imported from the helpers module are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from statistics import quantiles

import pytest

from alerts.models import Alert
from monitoring.auth import register_device
from monitoring.evaluation import claim_due_scheduled_rules, evaluate_scheduled_rules
from monitoring.models import Reading, Rule
from monitoring.patient_rules import apply_protocols
from tests.monitoring.admin.patients_helpers import (  # noqa: F401
    NOW,
    change_url,
    frozen,
    physician_client,
    rule_url,
    stored,
)

CGM_CYCLE = [50, 60, 100, 100, 150, 150, 200, 300]  # 1/8 in each outer range, 4/8 in range


def page_of(client, patient, **query):
    response = client.get(change_url(patient), query)
    assert response.status_code == 200
    return response, response.context["patient_page"]


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def sensor(patient, measured_at, value: float, **fields) -> Reading:
    return stored(
        patient, "glucose", measured_at, value=value, unit="mg/dL", entry="device", **fields
    )


def fourteen_days_of_cgm(patient) -> None:
    Reading.objects.bulk_create(
        sensor(patient, NOW - timedelta(minutes=5 * i), CGM_CYCLE[i % 8]) for i in range(4032)
    )


# --- The period -----------------------------------------------------------------------------


@pytest.mark.parametrize("days", [7, 14, 30, 90])
def test_each_offered_period_ends_now(frozen, physician_client, patient, days):
    response, page = page_of(physician_client, patient, days=str(days))

    assert (page.period.preset, page.period.start, page.period.end) == (
        days,
        NOW - timedelta(days=days),
        NOW,
    )
    assert page.period_problem is None
    html = text_of(response)
    assert (
        f'<a href="?days={days}" data-days="{days}" class="selected" aria-current="true">' in html
    )
    assert f"<h2>Summaries and charts: last {days} days</h2>" in html


def test_the_page_opens_on_the_last_14_days(frozen, physician_client, patient):
    _response, page = page_of(physician_client, patient)

    assert (page.period.preset, page.period.start, page.period_problem) == (
        14,
        NOW - timedelta(days=14),
        None,
    )


def test_a_custom_period_is_the_patients_local_days(frozen, physician_client, patient):
    # the patient lives in New York (EST, UTC-5)
    response, page = page_of(
        physician_client, patient, **{"from": "2026-02-01", "to": "2026-02-10"}
    )

    assert (page.period.preset, page.period.start, page.period.end) == (
        None,
        datetime(2026, 2, 1, 5, 0, tzinfo=UTC),
        datetime(2026, 2, 11, 5, 0, tzinfo=UTC),
    )
    assert page.period.label == "1 Feb 2026 – 10 Feb 2026"
    assert "<h2>Summaries and charts: 1 Feb 2026 – 10 Feb 2026</h2>" in text_of(response)

    # ending today, it ends now
    _response, page = page_of(
        physician_client, patient, **{"from": "2026-02-20", "to": "2026-03-01"}
    )
    assert (page.period.start, page.period.end) == (datetime(2026, 2, 20, 5, 0, tzinfo=UTC), NOW)


DEFAULT = "showing the last 14 days instead."


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"days": "abc"}, f"The period can be 7, 14, 30, 90 days or custom dates: {DEFAULT}"),
        ({"days": "-7"}, f"The period can be 7, 14, 30, 90 days or custom dates: {DEFAULT}"),
        ({"days": "1e9"}, f"The period can be 7, 14, 30, 90 days or custom dates: {DEFAULT}"),
        (
            {"days": "<script>alert(1)</script>"},
            f"The period can be 7, 14, 30, 90 days or custom dates: {DEFAULT}",
        ),
        (
            {"from": "2026-02-01"},
            f"A custom period needs both dates as YYYY-MM-DD: {DEFAULT}",
        ),
        (
            {"from": "x" * 5000, "to": "2026-02-01"},
            f"A custom period needs both dates as YYYY-MM-DD: {DEFAULT}",
        ),
        (
            {"from": "2026-02-30", "to": "2026-03-01"},
            f"A custom period needs both dates as YYYY-MM-DD: {DEFAULT}",
        ),
        (
            {"from": "2026-02-10", "to": "2026-02-01"},
            f"The period's first day is after its last: {DEFAULT}",
        ),
        ({"from": "2026-02-01", "to": "2026-03-02"}, f"The period ends after today: {DEFAULT}"),
        (
            {"from": "2024-01-01", "to": "2026-02-01"},
            f"A custom period spans at most 366 days: {DEFAULT}",
        ),
        (
            {"from": "0001-01-01", "to": "0001-01-02"},
            f"The page goes back at most 3660 days: {DEFAULT}",
        ),
    ],
)
def test_a_period_the_page_cannot_use_falls_back_and_says_why(
    frozen, physician_client, patient, query, problem
):
    response, page = page_of(physician_client, patient, **query)

    assert (page.period.preset, page.period.start, page.period.end) == (
        14,
        NOW - timedelta(days=14),
        NOW,
    )
    assert page.period_problem == problem
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert re.search(r"data-period-problem>\s*" + re.escape(problem.replace("'", "&#x27;")), html)


# --- Blood pressure -------------------------------------------------------------------------


def ninety_days_of_home_blood_pressure(patient) -> None:
    """07:30 and 20:00 New York time on each of the 90 days before today: mornings 138/88 on
    even days and 128/82 on odd ones, evenings 122/78."""
    today = NOW.astimezone(patient.zone).date()
    readings = []
    for back in range(1, 91):
        day = today - timedelta(days=back)
        morning = (138, 88) if back % 2 == 0 else (128, 82)
        for (hour, minute), (systolic, diastolic) in [((7, 30), morning), ((20, 0), (122, 78))]:
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=patient.zone)
            readings.append(
                stored(patient, "blood_pressure", at, systolic=systolic, diastolic=diastolic)
            )
    Reading.objects.bulk_create(readings)


@pytest.mark.parametrize(("days", "readings"), [("14", 28), ("90", 180)])
def test_the_blood_pressure_summary_over_the_period(
    frozen, physician_client, patient, days, readings
):
    apply_protocols(patient=patient, codes=["hypertension"])
    ninety_days_of_home_blood_pressure(patient)

    response, page = page_of(physician_client, patient, days=days)

    # then: half the mornings 138/88 (above the goal < 135/85), half 128/82, evenings 122/78
    bp = page.summary.blood_pressure
    stats = bp.stats
    assert (stats.readings, stats.mean_systolic, stats.mean_diastolic) == (readings, 127.5, 81.5)
    assert (stats.at_goal, stats.percent_at_goal) == (readings * 3 // 4, 75.0)
    assert stats.morning == (readings // 2, 133, 85)
    assert stats.evening == (readings // 2, 122, 78)
    assert (bp.goal.text, bp.goal.source) == (
        "systolic < 135 and diastolic < 85 mmHg",
        "the patient's rule “Home BP average above goal”",
    )
    assert bp.few_readings is False
    html = text_of(response)
    assert re.search(r'data-metric="bp-mean">.*?128/82 mmHg', html)
    assert re.search(r'data-metric="bp-at-goal">.*?75\.0 %', html)
    assert re.search(r'data-metric="bp-morning">.*?04:00–11:59.*?133/85 mmHg', html)
    assert re.search(r'data-metric="bp-evening">.*?18:00–23:59.*?122/78 mmHg', html)
    assert "Goal: systolic &lt; 135 and diastolic &lt; 85 mmHg" in html
    # the charts cover the period too: every reading of it on the blood-pressure chart
    (chart,) = [chart for chart, _svg in page.charts if chart.metric == "blood_pressure"]
    assert (chart.readings, chart.start) == (readings, NOW - timedelta(days=int(days)))
    assert chart.unit == "mmHg"


def test_the_goal_is_the_patients_tailored_rule_else_the_reference(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["hypertension"])
    ninety_days_of_home_blood_pressure(patient)
    rule = Rule.objects.get(patient=patient, reference__endswith="bp_home_avg_above_goal")
    rule.parameters = rule.parameters | {
        "conditions": [
            {"component": "systolic", "op": "ge", "value": 130},
            {"component": "diastolic", "op": "ge", "value": 80},
        ]
    }
    rule.save()

    bp = page_of(physician_client, patient)[1].summary.blood_pressure

    # 128/82 mornings are above 130/80 too: only the evenings are at goal
    assert (bp.goal.text, bp.stats.at_goal, bp.stats.percent_at_goal) == (
        "systolic < 130 and diastolic < 80 mmHg",
        14,
        50.0,
    )

    rule.delete()
    bp = page_of(physician_client, patient)[1].summary.blood_pressure

    assert (bp.goal.text, bp.stats.at_goal) == ("systolic < 135 and diastolic < 85 mmHg", 21)
    assert bp.goal.source == (
        "the clinical reference (7-day home average (equivalent to office 140/90))"
    )


def test_few_blood_pressure_readings_carry_a_caveat(frozen, physician_client, patient):
    apply_protocols(patient=patient, codes=["hypertension"])
    Reading.objects.bulk_create(
        stored(patient, "blood_pressure", NOW - timedelta(days=d), systolic=130, diastolic=80)
        for d in range(1, 6)
    )

    response, page = page_of(physician_client, patient)

    assert page.summary.blood_pressure.few_readings is True
    assert (
        "Few readings: 5 (fewer than 12, an engineering choice: the reference names no minimum"
        " for a home average)." in text_of(response)
    )


# --- CGM: sensor readings only, the AGP and the time-in-ranges bar ----------------------------


def run_scheduled_rules(patient) -> None:
    claimed = claim_due_scheduled_rules(now=NOW)
    evaluate_scheduled_rules(patient_id=patient.pk, rule_ids=claimed[patient.pk], now=NOW)


def test_fingersticks_count_neither_as_wear_nor_in_the_ranges_on_the_page_or_for_the_rules(
    frozen, physician_client, patient
):
    # given: 14 days of a full 5-minute sensor, and 28 low fingersticks: 14 typed in with a
    # meal context, 14 from a registered glucose meter
    apply_protocols(patient=patient, codes=["diabetes"])
    fourteen_days_of_cgm(patient)
    meter, _key = register_device(patient=patient, kind="glucose_meter", serial="GM-1")
    Reading.objects.bulk_create(
        [
            *(
                stored(
                    patient,
                    "glucose",
                    NOW - timedelta(days=d, minutes=2),
                    value=40,
                    entry="manual",
                    context="fasting",
                )
                for d in range(14)
            ),
            *(
                sensor(patient, NOW - timedelta(days=d, minutes=3), 40, device=meter)
                for d in range(14)
            ),
        ]
    )

    # when
    run_scheduled_rules(patient)
    response, page = page_of(physician_client, patient)

    # then: wear is 4,032 of 4,032 sensor readings, the ranges those of the sensor alone
    cgm = page.summary.cgm
    assert (cgm.sufficient, cgm.readings, cgm.percent_active, cgm.fingersticks) == (
        True,
        4032,
        100.0,
        28,
    )
    assert [(s.key, s.name, s.bounds, s.percent) for s in cgm.ranges] == [
        ("very_low", "Very low", "< 54 mg/dL", 12.5),
        ("low", "Low", "54–69 mg/dL", 12.5),
        ("in_range", "In range", "70–180 mg/dL", 50.0),
        ("high", "High", "181–250 mg/dL", 12.5),
        ("very_high", "Very high", "> 250 mg/dL", 12.5),
    ]
    # the rules counted the same readings
    values = dict(Alert.objects.filter(patient=patient).values_list("dedupe_key", "values"))
    assert values["cgm_in_range"] == {"percent": 50.0, "readings": 4032}
    checks = {check.title: round(check.observed, 1) for check in cgm.targets}
    assert checks["CGM time in range below target"] == 50.0
    html = text_of(response)
    assert "28 fingersticks (typed in, from a meter or with a meal context)" in html
    assert re.search(r'data-metric="wear">.*?100\.0 % \(4032 of 4032 possible readings\)', html)


def test_the_agp_and_the_time_in_ranges_bar_are_drawn_from_sufficient_data(
    frozen, physician_client, patient
):
    apply_protocols(patient=patient, codes=["diabetes"])
    fourteen_days_of_cgm(patient)

    response, page = page_of(physician_client, patient)

    profile = page.summary.cgm.profile
    # 48 half-hour bins of the patient's (New York) day, 84 readings each; their percentiles
    # as statistics.quantiles computes them (inclusive: linear between closest ranks)
    by_bin: dict[int, list[float]] = {}
    for i in range(4032):
        local = (NOW - timedelta(minutes=5 * i)).astimezone(patient.zone)
        by_bin.setdefault((local.hour * 60 + local.minute) // 30, []).append(CGM_CYCLE[i % 8])
    assert (len(profile), {b.readings for b in profile}) == (48, {84})
    for b in profile:
        cuts = quantiles(by_bin[b.start_minute // 30], n=20, method="inclusive")
        expected = {5: cuts[0], 25: cuts[4], 50: cuts[9], 75: cuts[14], 95: cuts[18]}
        assert b.percentiles == pytest.approx(expected)
    html = response.content.decode()
    agp = re.search(r'<figure class="agp" data-chart="agp">(.*?)</figure>', html, re.S)[1]
    assert "<title" in agp and "Ambulatory glucose profile, last 14 days" in agp
    assert agp.count('class="agp-band agp-band-5-95"') == 1
    assert agp.count('class="agp-median"') == 1
    assert 'class="agp-target"' in agp
    bar = re.search(r'data-chart="time-in-ranges">(.*?)</figure>', html, re.S)[1]
    assert re.findall(r'class="tir-segment" data-range="(\w+)"', bar) == [
        "very_high",
        "high",
        "in_range",
        "low",
        "very_low",
    ]
    assert re.findall(r'<tspan font-weight="600">([\d.]+ %)</tspan> ([\w ]+) ', bar) == [
        ("12.5 %", "Very high"),
        ("12.5 %", "High"),
        ("50.0 %", "In range"),
        ("12.5 %", "Low"),
        ("12.5 %", "Very low"),
    ]


def test_seven_days_of_cgm_are_not_enough_for_an_agp(frozen, physician_client, patient):
    apply_protocols(patient=patient, codes=["diabetes"])
    fourteen_days_of_cgm(patient)

    response, page = page_of(physician_client, patient, days="7")

    assert (page.summary.cgm.sufficient, page.agp) == (False, None)
    html = text_of(response)
    assert 'data-chart="agp"' not in html
    assert (
        "Insufficient data (7 days, 100.0 % active: 2017 of 2016 possible sensor readings)" in html
    )
    assert "from ≥ 14 days of data with the sensor active ≥ 70 % of the time" in html


# --- INR caveat ---------------------------------------------------------------------------------


def test_an_inr_time_in_range_from_few_results_says_what_it_rests_on(
    frozen, physician_client, patient
):
    # given: three INR results over four days (issue 14: a 183-day TTR from them, no caveat)
    apply_protocols(patient=patient, codes=["anticoagulation"])
    Reading.objects.bulk_create(
        stored(patient, "inr", NOW - timedelta(days=days, hours=1), value=2.5) for days in (4, 2, 0)
    )

    response, page = page_of(physician_client, patient)

    rule_window = page.summary.inr[-1]
    assert (rule_window.window_days, rule_window.ttr.results, rule_window.ttr.days_total) == (
        183,
        3,
        4,
    )
    assert (rule_window.ttr.percent, rule_window.thin) == (100.0, True)
    html = text_of(response)
    assert re.search(
        r'data-window="183">.*?Little data: from 3 results over 4 days of the period\'s 183',
        html.replace("&#x27;", "'"),
    )


# --- Only what the patient is monitored for -------------------------------------------------


@pytest.mark.parametrize(
    ("protocols", "shown"),
    [
        (["copd"], {"summary-adherence"}),  # its rules watch doses too
        (["diabetes"], {"summary-cgm", "summary-adherence"}),
        (["hypertension"], {"summary-bp", "summary-adherence"}),
        (["anticoagulation"], {"summary-inr", "summary-adherence"}),
    ],
)
def test_summaries_only_for_what_the_patient_is_monitored_for(
    frozen, physician_client, patient, protocols, shown
):
    apply_protocols(patient=patient, codes=protocols)
    Reading.objects.bulk_create(
        [
            sensor(patient, NOW - timedelta(hours=1), 120),
            stored(patient, "inr", NOW - timedelta(days=2), value=2.5),
            stored(patient, "blood_pressure", NOW - timedelta(days=1), systolic=130, diastolic=80),
        ]
    )

    html = page_of(physician_client, patient)[0].content.decode()

    sections = set(re.findall(r'<section id="(summary-[\w-]+)"', html))
    assert sections == shown


# --- Names, units and times (issue 14.5) ----------------------------------------------------


def test_the_patients_name_is_the_title_and_the_last_breadcrumb(frozen, physician_client, patient):
    patient.name = "Ada Lovelace"
    patient.save()
    apply_protocols(patient=patient, codes=["anticoagulation"])
    Reading.objects.bulk_create([stored(patient, "inr", NOW - timedelta(hours=1), value=2.5)])

    response, _page = page_of(physician_client, patient)

    html = text_of(response)
    assert re.search(r"<title>Ada Lovelace \| ", html)
    assert "<h1>Ada Lovelace</h1>" in html
    breadcrumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', html)[1]
    assert breadcrumbs.strip().endswith("&rsaquo; Ada Lovelace")
    assert f"patient {patient.pk}" not in html
    # recent readings: the patient's clock (New York), the unit-less INR as a number
    assert re.search(
        r"<td class=\"number\">1 Mar 2026, 06:00 EST · 11:00 UTC your time</td><td>INR</td>"
        r"<td class=\"number\">2.5</td>",
        html,
    )

    # the rule page names the patient too
    rule = Rule.objects.get(patient=patient, key="inr_target_range")
    html = text_of(physician_client.get(rule_url(rule)))
    assert re.search(r"<title>Ada Lovelace \| Rule “", html)
    assert re.search(r'<div class="breadcrumbs">.*?<a href="[^"]+">Ada Lovelace</a>', html)
