"""The RPM billing ledger under the 2026 code set (program/ledger.py) at every edge of issue
13, item 8. Readings go through the real ingest (device days written by its statement);
"today" is NOW (15 May 2026) unless a test says otherwise, so March and April are closed.

The patient fixture lives in America/New_York (DST from 8 March 2026)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from program.ledger import Month, month_ledger, patient_billing, recompute_ledger
from program.models import LedgerLine
from tests.factories import PatientFactory
from tests.program.ledger_helpers import (
    days,
    episode,
    local,
    physician_of,
    post_device_days,
    post_manual_days,
    post_readings,
    time_entry,
)

NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
MARCH, APRIL = Month(2026, 3), Month(2026, 4)


def lines_of(month: Month, *, now: datetime = NOW, code: str | None = None) -> list[tuple]:
    """The month's ledger after a recomputation (device and set-up lines whose period ends
    in the month, the month's management lines), as (code, period_start, units, status,
    reason)."""
    return [
        (line.code, line.period_start, line.units, line.status, line.reason)
        for line in recompute_ledger(month=month, now=now).lines
        if code is None or line.code == code
    ]


def device_line(episode_, period_start: date) -> LedgerLine:
    return LedgerLine.objects.get(
        episode=episode_, code__in=["99445", "99454"], period_start=period_start
    )


# --- Device supply: days with data ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("count", "code", "status", "reason"),
    [
        (0, "99445", "not_billable", "fewer than 2 days with data"),
        (1, "99445", "not_billable", "fewer than 2 days with data"),
        (2, "99445", "billable", ""),
        (15, "99445", "billable", ""),
        (16, "99454", "billable", ""),
        (30, "99454", "billable", ""),
    ],
)
def test_the_days_with_data_choose_one_device_code(patient, physician, count, code, status, reason):
    ep = episode(patient, start=date(2026, 3, 1), practitioner=physician)
    if count:
        post_device_days(patient, days(date(2026, 3, 1), count))

    recompute_ledger(month=MARCH, now=NOW)

    line = device_line(ep, date(2026, 3, 1))
    assert (line.code, line.status, line.reason) == (code, status, reason)
    assert line.period_end == date(2026, 3, 30)
    assert line.evidence["days_with_data"] == count
    assert line.evidence["days"] == [d.isoformat() for d in days(date(2026, 3, 1), count)]
    assert line.evidence["period"] == {"index": 0, "start": "2026-03-01", "end": "2026-03-30"}
    # one device line per period, never both codes
    periods = LedgerLine.objects.filter(episode=ep, code__in=["99445", "99454"])
    assert sorted(periods.values_list("period_start", flat=True)) == [
        date(2026, 3, 1),
        date(2026, 3, 31),  # the next period, overlapping March (no data: not billable)
    ]


@pytest.mark.django_db
def test_days_are_counted_in_the_patients_zone_across_midnight_and_dst(patient):
    # given: a period of 1-30 March; three readings whose UTC date is not their local date
    ep = episode(patient, start=date(2026, 3, 1))
    post_readings(
        patient,
        [
            datetime(2026, 3, 1, 4, 30, tzinfo=UTC),  # 28 Feb 23:30 EST: before the period
            datetime(2026, 3, 8, 4, 59, tzinfo=UTC),  # 7 March 23:59 EST (before the change)
            datetime(2026, 3, 31, 3, 30, tzinfo=UTC),  # 30 March 23:30 EDT: last day
        ],
    )

    recompute_ledger(month=MARCH, now=NOW)

    # then: two local days in the period (by UTC date it would be one, and no code)
    line = device_line(ep, date(2026, 3, 1))
    assert line.evidence["days"] == ["2026-03-07", "2026-03-30"]
    assert (line.code, line.status) == ("99445", "billable")


@pytest.mark.django_db
def test_manual_readings_are_not_counted(patient):
    ep = episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 1), 15))
    post_manual_days(patient, days(date(2026, 3, 16), 10))

    recompute_ledger(month=MARCH, now=NOW)

    line = device_line(ep, date(2026, 3, 1))
    assert (line.code, line.evidence["days_with_data"]) == ("99445", 15)


@pytest.mark.django_db
def test_only_manual_readings_earn_no_device_code(patient):
    ep = episode(patient, start=date(2026, 3, 1))
    post_manual_days(patient, days(date(2026, 3, 1), 20))

    recompute_ledger(month=MARCH, now=NOW)

    line = device_line(ep, date(2026, 3, 1))
    assert (line.status, line.reason, line.evidence["days"]) == (
        "not_billable",
        "fewer than 2 days with data",
        [],
    )


@pytest.mark.django_db
def test_a_device_period_crossing_a_month_end_belongs_to_the_month_it_ends_in(patient):
    # given: a period of 20 March - 18 April with 12 days in March and 4 in April
    ep = episode(patient, start=date(2026, 3, 20))
    post_device_days(patient, days(date(2026, 3, 20), 16))

    # then: March's ledger has no device line, April's has the 99454 with all 16 days
    march = recompute_ledger(month=MARCH, now=NOW).lines
    april = recompute_ledger(month=APRIL, now=NOW).lines

    assert [line.code for line in march] == ["99470"]
    assert [(line.code, line.period_start, line.period_end, line.status) for line in april] == [
        ("99453", date(2026, 3, 20), date(2026, 4, 18), "billable"),
        ("99454", date(2026, 3, 20), date(2026, 4, 18), "billable"),
        ("99470", date(2026, 4, 1), date(2026, 4, 30), "not_billable"),
    ]
    line = device_line(ep, date(2026, 3, 20))
    assert line.evidence["days"][-4:] == ["2026-04-01", "2026-04-02", "2026-04-03", "2026-04-04"]
    # the patient's March shows the period running into April, with its days
    march_view = patient_billing(patient=patient, month=MARCH, now=NOW)
    assert [(p.start, p.end, p.days_with_data, p.code) for p in march_view.device_periods] == [
        (date(2026, 3, 20), date(2026, 4, 18), 16, "99454")
    ]


@pytest.mark.django_db
def test_a_running_period_is_accruing_with_the_code_its_days_earn_so_far(patient):
    ep = episode(patient, start=date(2026, 3, 20))
    post_device_days(patient, days(date(2026, 3, 20), 5))
    today = datetime(2026, 4, 10, 16, 0, tzinfo=UTC)

    lines = month_ledger(month=APRIL, now=today)

    device = next(line for line in lines if line.code in ("99445", "99454"))
    assert (device.code, device.status, device.reason) == ("99445", "accruing", "")
    assert device.episode_id == ep.pk
    # the set-up's two days are met: billable without waiting for the period's end
    setup = next(line for line in lines if line.code == "99453")
    assert setup.status == "billable"


@pytest.mark.django_db
def test_a_period_is_running_on_its_last_day_in_the_patients_zone(patient):
    # 30 March 23:30 EDT is 31 March 03:30 UTC: still the period's last day for the patient.
    episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 1), 3))
    last_evening = datetime(2026, 3, 31, 3, 30, tzinfo=UTC)
    next_morning = datetime(2026, 3, 31, 4, 30, tzinfo=UTC)

    running = month_ledger(month=MARCH, now=last_evening)
    closed = month_ledger(month=MARCH, now=next_morning)

    assert [line.status for line in running if line.code == "99445"] == ["accruing"]
    assert [line.status for line in closed if line.code == "99445"] == ["billable"]


@pytest.mark.django_db
def test_an_episode_ended_mid_period_closes_the_period_on_its_end(patient):
    # given: an episode of 1-12 March; data on 3 days inside, 2 after its end
    ep = episode(patient, start=date(2026, 3, 1), end=date(2026, 3, 12))
    post_device_days(patient, [*days(date(2026, 3, 2), 3), date(2026, 3, 20), date(2026, 3, 21)])
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=30, interactive=True)

    # when: computed the day after the end, while March is still running
    lines = recompute_ledger(month=MARCH, now=datetime(2026, 3, 13, 15, 0, tzinfo=UTC)).lines

    # then: the period is closed by the end, counts the days inside, and the month's window
    # stops at the end too
    assert [(line.code, line.period_end, line.status) for line in lines] == [
        ("99445", date(2026, 3, 12), "billable"),
        ("99453", date(2026, 3, 12), "billable"),
        ("99470", date(2026, 3, 31), "billable"),
    ]
    assert device_line(ep, date(2026, 3, 1)).evidence["days"] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
    ]
    management = LedgerLine.objects.get(code="99470")
    assert management.evidence["window"] == {"start": "2026-03-01", "end": "2026-03-12"}
    assert management.evidence["approved_minutes"] == 12


@pytest.mark.django_db
def test_periods_follow_each_other_by_thirty_days_from_the_start(patient):
    ep = episode(patient, start=date(2026, 2, 1))
    post_device_days(patient, days(date(2026, 2, 1), 40))

    recompute_ledger(month=MARCH, now=NOW)

    assert [
        (line.period_start, line.period_end, line.code, line.evidence["days_with_data"])
        for line in LedgerLine.objects.filter(episode=ep, code__in=["99445", "99454"]).order_by(
            "period_start"
        )
    ] == [
        (date(2026, 2, 1), date(2026, 3, 2), "99454", 30),
        (date(2026, 3, 3), date(2026, 4, 1), "99445", 10),
    ]


# --- Set-up ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_setup_needs_two_days_in_the_first_period_only(patient):
    ep = episode(patient, start=date(2026, 3, 1))
    # one day in the first period, many in the second
    post_device_days(patient, [date(2026, 3, 5), *days(date(2026, 4, 1), 10)])

    recompute_ledger(month=MARCH, now=NOW)

    setup = LedgerLine.objects.get(episode=ep, code="99453")
    assert (setup.status, setup.reason) == (
        "not_billable",
        "fewer than 2 days with data in the first device period",
    )
    assert setup.evidence["days"] == ["2026-03-05"]
    assert setup.evidence["min_days"] == 2


@pytest.mark.django_db
def test_setup_is_once_per_episode(patient):
    ep = episode(patient, start=date(2026, 2, 1))
    post_device_days(patient, days(date(2026, 2, 1), 70))

    recompute_ledger(month=Month(2026, 2), now=NOW)
    recompute_ledger(month=MARCH, now=NOW)
    recompute_ledger(month=APRIL, now=NOW)

    assert list(
        LedgerLine.objects.filter(episode=ep, code="99453").values_list("period_start", "status")
    ) == [(date(2026, 2, 1), "billable")]


# --- Treatment management: minutes -------------------------------------------------------------


def log_minutes(patient, minutes: int, *, interactive: bool, day: date = date(2026, 3, 10)):
    """`minutes` approved in March: with interactive, a 5-minute call and the rest as data
    review; without, data review only."""
    if interactive:
        time_entry(patient, at=local(patient, day, 9), minutes=5, interactive=True)
        minutes -= 5
    time_entry(patient, at=local(patient, day, 11), minutes=minutes)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("minutes", "interactive", "expected"),
    [
        (9, True, [("99470", 1, "not_billable", "fewer than 10 approved minutes")]),
        (9, False, [("99470", 1, "not_billable", "fewer than 10 approved minutes")]),
        (10, True, [("99470", 1, "billable", "")]),
        (10, False, [("99470", 1, "not_billable", "no interactive communication")]),
        (19, True, [("99470", 1, "billable", "")]),
        (19, False, [("99470", 1, "not_billable", "no interactive communication")]),
        (20, True, [("99457", 1, "billable", "")]),
        (20, False, [("99457", 1, "not_billable", "no interactive communication")]),
        (39, True, [("99457", 1, "billable", "")]),
        (40, True, [("99457", 1, "billable", ""), ("99458", 1, "billable", "")]),
        (
            40,
            False,
            [
                ("99457", 1, "not_billable", "no interactive communication"),
                ("99458", 1, "not_billable", "no interactive communication"),
            ],
        ),
        (60, True, [("99457", 1, "billable", ""), ("99458", 2, "billable", "")]),
    ],
)
def test_approved_minutes_choose_the_management_codes(patient, minutes, interactive, expected):
    episode(patient, start=date(2026, 3, 1))
    log_minutes(patient, minutes, interactive=interactive)

    recompute_ledger(month=MARCH, now=NOW)

    management = LedgerLine.objects.filter(code__in=["99470", "99457", "99458"]).order_by("code")
    assert [(m.code, m.units, m.status, m.reason) for m in management] == expected
    assert {m.evidence["approved_minutes"] for m in management} == {minutes}


@pytest.mark.django_db
def test_unapproved_minutes_are_shown_and_do_not_count(patient):
    episode(patient, start=date(2026, 3, 1))
    call = time_entry(patient, at=local(patient, date(2026, 3, 3)), minutes=5, interactive=True)
    review = time_entry(patient, at=local(patient, date(2026, 3, 4)), minutes=10)
    pending = time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=10, approved=False)

    recompute_ledger(month=MARCH, now=NOW)

    line = LedgerLine.objects.get(code__in=["99470", "99457"])
    assert (line.code, line.status) == ("99470", "billable")
    assert line.evidence == {
        "month": "2026-03",
        "window": {"start": "2026-03-01", "end": "2026-03-31"},
        "minutes": 25,
        "approved_minutes": 15,
        "unapproved_minutes": 10,
        "time_entries": [call.pk, review.pk],
        "unapproved_entries": [pending.pk],
        "interactive_entries": [call.pk],
    }
    view = patient_billing(patient=patient, month=MARCH, now=NOW)
    assert (view.minutes, view.approved_minutes, view.interactive, view.codes) == (
        25,
        15,
        True,
        [("99470", 1)],
    )


@pytest.mark.django_db
def test_an_unapproved_call_is_no_interactive_communication(patient):
    episode(patient, start=date(2026, 3, 1))
    time_entry(patient, at=local(patient, date(2026, 3, 3)), minutes=15)
    time_entry(
        patient, at=local(patient, date(2026, 3, 4)), minutes=5, interactive=True, approved=False
    )

    recompute_ledger(month=MARCH, now=NOW)

    line = LedgerLine.objects.get(code="99470")
    assert (line.status, line.reason) == ("not_billable", "no interactive communication")


@pytest.mark.django_db
def test_time_counts_in_the_month_of_the_patients_zone(patient):
    # 1 April 02:00 UTC is 31 March 22:00 EDT: March's time.
    episode(patient, start=date(2026, 3, 1))
    time_entry(patient, at=datetime(2026, 4, 1, 2, 0, tzinfo=UTC), minutes=20, interactive=True)

    march = lines_of(MARCH, code="99457")
    recompute_ledger(month=APRIL, now=NOW)

    assert march == [("99457", date(2026, 3, 1), 1, "billable", "")]
    april = LedgerLine.objects.get(code="99470", period_start=date(2026, 4, 1))
    assert (april.status, april.evidence["approved_minutes"]) == ("not_billable", 0)


@pytest.mark.django_db
def test_a_running_month_is_accruing(patient):
    episode(patient, start=date(2026, 3, 1))
    time_entry(patient, at=local(patient, date(2026, 5, 2)), minutes=12)

    lines = month_ledger(month=Month(2026, 5), now=NOW)

    management = [line for line in lines if line.code == "99470"]
    assert [(m.status, m.reason) for m in management] == [("accruing", "")]


# --- Consent, two practitioners --------------------------------------------------------------


@pytest.mark.django_db
def test_without_consent_nothing_is_billable(patient):
    episode(patient, start=date(2026, 3, 1), consent=False)
    post_device_days(patient, days(date(2026, 3, 1), 20))
    log_minutes(patient, 25, interactive=True)

    assert lines_of(MARCH) == [
        ("99453", date(2026, 3, 1), 1, "not_billable", "no consent recorded"),
        ("99454", date(2026, 3, 1), 1, "not_billable", "no consent recorded"),
        ("99457", date(2026, 3, 1), 1, "not_billable", "no consent recorded"),
    ]


@pytest.mark.django_db
def test_two_practitioners_in_a_month_the_first_episode_bills(patient, physician):
    # given: Dr physician's episode of 1-10 March, then another physician's from 15 March
    other = physician_of(patient, "dr-other")
    first = episode(patient, start=date(2026, 3, 1), end=date(2026, 3, 10), practitioner=physician)
    second = episode(patient, start=date(2026, 3, 15), practitioner=other)
    post_device_days(patient, [*days(date(2026, 3, 2), 3), *days(date(2026, 3, 15), 20)])
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=20, interactive=True)
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=25, interactive=True)

    recompute_ledger(month=MARCH, now=NOW)
    recompute_ledger(month=APRIL, now=NOW)

    # then: the month and the overlapping 30 days are the first episode's
    def line(ep, code, start):
        found = LedgerLine.objects.get(episode=ep, code=code, period_start=start)
        return (found.status, found.reason, found.practitioner.username)

    assert line(first, "99457", date(2026, 3, 1)) == ("billable", "", "physician")
    assert line(second, "99457", date(2026, 3, 1)) == (
        "not_billable",
        "another practitioner billed the month",
        "dr-other",
    )
    assert line(first, "99445", date(2026, 3, 1)) == ("billable", "", "physician")
    assert line(second, "99454", date(2026, 3, 15)) == (
        "not_billable",
        "another practitioner billed an overlapping device period",
        "dr-other",
    )
    # the evidence names the episode that billed
    assert (
        LedgerLine.objects.get(episode=second, code="99457").evidence["billed_by_episode"]
        == first.pk
    )
    assert device_line(second, date(2026, 3, 15)).evidence["billed_by_episode"] == first.pk
    # each episode's own set-up; the second's next period no longer overlaps
    assert line(second, "99453", date(2026, 3, 15))[0] == "billable"
    assert LedgerLine.objects.get(episode=second, period_start=date(2026, 4, 14)).status == (
        "not_billable"  # no data after 3 April: fewer than 2 days
    )


@pytest.mark.django_db
def test_the_second_practitioner_bills_the_month_the_first_could_not(patient, physician):
    other = physician_of(patient, "dr-other")
    episode(patient, start=date(2026, 3, 1), end=date(2026, 3, 10), practitioner=physician)
    second = episode(patient, start=date(2026, 3, 15), practitioner=other)
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=5, interactive=True)
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=25, interactive=True)

    recompute_ledger(month=MARCH, now=NOW)

    billable = LedgerLine.objects.filter(status="billable", code__in=["99470", "99457"])
    assert [(line.episode_id, line.code) for line in billable] == [(second.pk, "99457")]


# --- Export, recomputation -------------------------------------------------------------------


@pytest.mark.django_db
def test_exported_lines_are_frozen(patient):
    # given: March exported with 3 days and 12 minutes
    ep = episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 2), 3))
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)
    run = recompute_ledger(month=MARCH, now=NOW, export=True)
    exported = {line.pk: line.evidence for line in run.exported}
    assert sorted(line.code for line in run.exported) == ["99445", "99453", "99470"]

    # when: more data and time arrive for March, and March is recomputed
    post_device_days(patient, days(date(2026, 3, 10), 20))
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=30, interactive=True)
    recompute_ledger(month=MARCH, now=NOW)

    # then: the exported lines stand as they were, and nothing else bills their periods
    stored = LedgerLine.objects.filter(episode=ep, period_end__lte=MARCH.last)
    assert sorted((line.code, line.status) for line in stored) == [
        ("99445", "exported"),
        ("99453", "exported"),
        ("99470", "exported"),
    ]
    assert {line.pk: line.evidence for line in stored} == exported
    assert all(line.exported_at == NOW for line in stored)


@pytest.mark.django_db
def test_an_export_marks_only_months_that_are_over(patient):
    episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 2), 3))
    # 31 March 20:00 EDT: the period closed, the month not yet over for the patient
    run = recompute_ledger(month=MARCH, now=datetime(2026, 4, 1, 0, 0, tzinfo=UTC), export=True)

    assert run.exported == []
    assert not LedgerLine.objects.filter(status="exported").exists()
    assert device_line(LedgerLine.objects.get(code="99453").episode, date(2026, 3, 1)).status == (
        "billable"
    )


@pytest.mark.django_db
def test_recomputation_is_idempotent(patient):
    episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 2), 17))
    log_minutes(patient, 45, interactive=True)

    first = recompute_ledger(month=MARCH, now=NOW).lines
    before = list(LedgerLine.objects.order_by("pk").values())
    second = recompute_ledger(month=MARCH, now=datetime(2026, 5, 16, tzinfo=UTC)).lines
    after = list(LedgerLine.objects.order_by("pk").values())

    def without_time(rows):
        return [{k: v for k, v in row.items() if k != "computed_at"} for row in rows]

    assert without_time(after) == without_time(before)
    assert [line.pk for line in first] == [line.pk for line in second]
    assert {row["computed_at"] for row in after} == {datetime(2026, 5, 16, tzinfo=UTC)}


@pytest.mark.django_db
def test_a_line_whose_code_changed_is_replaced_not_doubled(patient):
    ep = episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 1), 10))
    recompute_ledger(month=MARCH, now=NOW)
    post_device_days(patient, days(date(2026, 3, 11), 6))

    recompute_ledger(month=MARCH, now=NOW)

    assert list(
        LedgerLine.objects.filter(
            episode=ep, period_start=date(2026, 3, 1), code__in=["99445", "99454"]
        ).values_list("code", flat=True)
    ) == ["99454"]


@pytest.mark.django_db
def test_the_ledger_takes_a_constant_number_of_queries(team, physician):
    def patients(count: int):
        made = []
        for _ in range(count):
            patient = PatientFactory(care_team=team, timezone="America/Chicago")
            episode(patient, start=date(2026, 3, 1), practitioner=physician)
            post_device_days(patient, days(date(2026, 3, 1), 3))
            time_entry(patient, at=local(patient, date(2026, 3, 4)), minutes=12, interactive=True)
            made.append(patient)
        return made

    patients(2)
    with CaptureQueriesContext(connection) as few:
        recompute_ledger(month=MARCH, now=NOW)
    patients(6)
    with CaptureQueriesContext(connection) as more:
        run = recompute_ledger(month=MARCH, now=NOW)

    assert run.patients == 8
    assert len(more) == len(few)
    assert len(few) <= 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_and_an_export_leave_one_consistent_ledger(patient, run_concurrently):
    # given: a closed March with billable lines
    episode(patient, start=date(2026, 3, 1))
    post_device_days(patient, days(date(2026, 3, 2), 3))
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)

    # when: two recomputations and an export run at once
    runs = run_concurrently(
        lambda: recompute_ledger(month=MARCH, now=NOW),
        lambda: recompute_ledger(month=MARCH, now=NOW, export=True),
        lambda: recompute_ledger(month=MARCH, now=NOW),
    )

    # then: the export's lines stay exported whatever ran after it, and no line is doubled
    assert sorted(line.code for line in runs[1].exported) == ["99445", "99453", "99470"]
    march = LedgerLine.objects.filter(period_end__lte=MARCH.last)
    assert sorted(march.values_list("code", "status")) == [
        ("99445", "exported"),
        ("99453", "exported"),
        ("99470", "exported"),
    ]
    assert LedgerLine.objects.count() == 4  # and the next period's (no data, not billable)


@pytest.mark.django_db
def test_two_episodes_of_one_practitioner_bill_the_month_once(patient, physician):
    episode(patient, start=date(2026, 3, 1), end=date(2026, 3, 10), practitioner=physician)
    second = episode(patient, start=date(2026, 3, 15), practitioner=physician)
    time_entry(patient, at=local(patient, date(2026, 3, 5)), minutes=12, interactive=True)
    time_entry(patient, at=local(patient, date(2026, 3, 20)), minutes=12, interactive=True)

    recompute_ledger(month=MARCH, now=NOW)

    line = LedgerLine.objects.get(episode=second, code="99470")
    assert (line.status, line.reason) == ("not_billable", "another episode billed the month")
