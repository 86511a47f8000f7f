"""Properties of the ledger's rules over generated records (program/ledger.py): the plan is
computed in memory (no database), so hypothesis can try many shapes of an episode's days
and time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.models import Patient
from program.codes import billing_reference
from program.ledger import Month, Records, management_codes, plan_ledger
from program.models import Episode, LineStatus

ZONE = "America/New_York"


@given(st.integers(min_value=0, max_value=600))
def test_minutes_never_earn_99470_with_99457_and_add_ons_only_after_99457(minutes):
    codes = dict(management_codes(minutes))

    assert not ("99470" in codes and "99457" in codes)
    assert ("99458" in codes) <= ("99457" in codes)
    assert codes.get("99458", 0) == (max(minutes - 20, 0) // 20 if minutes >= 20 else 0)
    assert ("99470" in codes) == (10 <= minutes <= 19)


@given(st.integers(min_value=0, max_value=30))
def test_days_earn_at_most_one_device_code(days):
    code = billing_reference().device_code_for(days)

    assert code == (None if days < 2 else "99445" if days <= 15 else "99454")


entries = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=75),  # day after the episode's start
        st.integers(min_value=1, max_value=45),  # minutes
        st.booleans(),  # interactive
        st.booleans(),  # approved
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    start=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 6, 30)),
    length=st.one_of(st.none(), st.integers(min_value=0, max_value=70)),
    offsets=st.sets(st.integers(min_value=0, max_value=90), max_size=40),
    time_=entries,
    consent=st.booleans(),
    month_offset=st.integers(min_value=0, max_value=2),
    today_offset=st.integers(min_value=0, max_value=120),
)
def test_a_planned_ledger_keeps_the_code_rules(
    start, length, offsets, time_, consent, month_offset, today_offset
):
    # given: one episode, its device days and time, in memory
    patient = Patient(pk=1, timezone=ZONE)
    practitioner = get_user_model()(pk=1, username="physician")
    episode = Episode(
        pk=1,
        patient=patient,
        start=start,
        end=None if length is None else start + timedelta(days=length),
        consent_at=datetime(2026, 1, 1, tzinfo=UTC) if consent else None,
        consent_method="written" if consent else "",
        billing_practitioner=practitioner,
    )
    days = sorted(start + timedelta(days=offset) for offset in offsets)
    zone = ZoneInfo(ZONE)
    rows = [
        {
            "id": index,
            "patient_id": 1,
            "started_at": datetime.combine(start + timedelta(days=day), time(10), zone),
            "minutes": minutes,
            "interactive": interactive,
            "approved_at": datetime(2026, 1, 1, tzinfo=UTC) if approved else None,
        }
        for index, (day, minutes, interactive, approved) in enumerate(time_)
    ]
    month = Month.of(start)
    for _ in range(month_offset):
        month = month.next()
    now = datetime.combine(start + timedelta(days=today_offset), time(12), UTC)

    # when
    plan = plan_ledger(
        month=month,
        records=Records({1: ZONE}, [episode], {1: days}, rows, []),
        now=now,
        setup_always=True,
    )

    # then
    today = now.astimezone(zone).date()
    lines = [p.line for p in plan.lines]
    device = [line for line in lines if line.code in ("99445", "99454")]
    assert max(Counter(line.period_start for line in device).values(), default=0) <= 1
    for planned in plan.lines:
        line = planned.line
        if line.code in ("99445", "99454"):
            counted = [d for d in days if line.period_start <= d <= line.period_end]
            assert line.evidence["days"] == [d.isoformat() for d in counted]
            if planned.earned:
                assert line.code == billing_reference().device_code_for(len(counted))
            if line.status == LineStatus.BILLABLE:
                assert len(counted) >= 2 and line.period_end < today and consent
        if line.status == LineStatus.ACCRUING:
            assert line.period_end >= today
        if not consent:
            assert line.status == LineStatus.NOT_BILLABLE
    management = Counter(line.code for line in lines if line.period_start == month.first)
    assert not (management["99470"] and management["99457"])
    assert management["99458"] <= management["99457"]
    for line in lines:
        if line.code in ("99470", "99457") and line.status == LineStatus.BILLABLE:
            assert line.evidence["interactive_entries"]
            assert line.evidence["approved_minutes"] >= 10
