"""Keeping patients above the line (issue 13, item 6): a daily encouragement to the patients
whose current device period may fall short of the days with device data a full period needs
(16: program.codes.billing_reference().full_period_days).

Who. A patient with an episode running on their local today (an open one, or one ending
today or later), whose device period containing today (program.periods.period_on) stands
`at_risk` (program.periods.standing: the pace so far, kept over the days left, falls short)
and who sent no device data yet today. Not nudged:
- `reached` and `on_track`: nothing to ask;
- `cannot` (even a reading on every day left falls short): a message counting towards a
  number the patient can no longer reach would be false, and the nudge exists to keep the
  period's count, not the clinical data, coming: the clinical data is asked for by the
  patient's own measurement schedules (their reminders and missed-slot nudges, which know
  nothing of periods and go on). A patient in that state has missed many of the period's
  days (or their episode ends before the period would): the panel shows it (program.periods,
  the same standing), and a call from the care team is the answer, not another automated
  message. Their next period starts `on_track` and is watched afresh;
- a patient who sent device data today (a DeviceDay of their local today), checked here
  and again by nudge_patient under the patient's lock and at delivery (the nudge is
  cancelled if data arrived while it waited);
- consent is not required: the nudge is about the patient's monitoring, not a claim;
  the ledger decides what is billable.

When. Beat runs `nudge_patients_at_risk` every 15 minutes (config/settings.py); each run
looks at the patients whose local time is in OUTREACH_LOCAL_HOURS, late afternoon: late
enough that a patient who measures on their own routine (mornings, mostly) has had the day
to do it, early enough to measure before the evening and before usual quiet hours; and apart
from the streak nudges of the late morning, so the two do not compete for the daily cap and
the minimum gap. A patient unavailable at one run (quiet hours, cap, just messaged) is
tried again at the next while the window lasts. Each patient is nudged at most once per
local day: Nudge.local_day with the unique constraint (patient, purpose, local_day) holds it,
whatever reruns, retries or two workers do; the look-up below only saves the work.

How. Through monitoring.nudges.nudge_patient, purpose keep_sending: its safety rails
(quiet hours, daily cap, minimum gap, channel fallback: availability.py), the variant
chosen per patient by the policy (Thompson sampling), delivery after commit, the outcome
(a device reading within the outcome window) settled into the patient's record.

For the panel: `keep_sending_nudges_on` tells, in one query, which patients of a page got
this nudge on their local today, with its delivery status — the panel shows the at-risk
flag itself from program.periods, and this beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q

from monitoring.models import Nudge, NudgePurpose
from monitoring.nudges import PeriodDays, nudge_patient
from program.codes import billing_reference
from program.models import Episode
from program.periods import DevicePeriod, Reach, period_on, period_standings

logger = logging.getLogger(__name__)

# The patient's local late afternoon (see the module docstring); wider than the beat
# interval, so a run falls in it every day, and several, so an unavailable patient is
# tried again.
OUTREACH_LOCAL_HOURS = (time(16), time(19))
OUTREACH_BATCH = 500


def nudge_patients_at_risk(
    *, now: datetime, after_episode_id: int | None = None, limit: int = OUTREACH_BATCH
) -> tuple[int, int | None]:
    """Ask monitoring.nudges for a keep-sending nudge to each patient at risk (module
    docstring: who, when) whose local time is in OUTREACH_LOCAL_HOURS, among at most `limit`
    episodes after `after_episode_id`; returns (nudges written, the last episode id when the
    batch was full, for the next batch).

    Writes and enqueues what nudge_patient does: a Nudge per patient nudged, its delivery
    after commit. Four queries for the batch (zones, episodes, device days, today's
    nudges), then nudge_patient's per patient at risk.
    """
    episodes = _running_episodes(now, after_episode_id, limit)
    today: dict[int, date] = {}
    periods: dict[int, DevicePeriod] = {}
    patients = {}
    for episode in episodes:
        local_today = now.astimezone(episode.patient.zone).date()
        # Episodes of one patient do not overlap: at most one runs on the patient's today.
        period = period_on(start=episode.start, end=episode.end, day=local_today)
        if period is not None:
            today[episode.patient_id], periods[episode.patient_id] = local_today, period
            patients[episode.patient_id] = episode.patient
    written = 0
    for patient_id, days in _at_risk(periods, today).items():
        try:
            nudge = nudge_patient(
                patient=patients[patient_id],
                purpose=NudgePurpose.KEEP_SENDING,
                slot=None,
                now=now,
                period_days=days,
            )
        except Exception:
            # One patient's failure must not hold up the others; the next run tries again.
            logger.exception("keep-sending nudge for patient %s failed", patient_id)
            continue
        written += nudge is not None
    return written, episodes[-1].pk if len(episodes) == limit else None


def _running_episodes(now: datetime, after_episode_id: int | None, limit: int) -> list[Episode]:
    """Episodes of patients whose local time is in the window that may run on their local
    today: every zone's date is within a day of UTC's; period_on decides exactly."""
    utc_day = now.astimezone(UTC).date()
    may_run = Q(start__lte=utc_day + timedelta(days=1)) & (
        Q(end__isnull=True) | Q(end__gte=utc_day - timedelta(days=1))
    )
    start, end = OUTREACH_LOCAL_HOURS
    zones = [
        name
        for name in Episode.objects.filter(may_run)
        .order_by()
        .values_list("patient__timezone", flat=True)
        .distinct()
        if start <= now.astimezone(ZoneInfo(name)).time() < end
    ]
    if not zones:
        return []
    return list(
        Episode.objects.filter(may_run, patient__timezone__in=zones, pk__gt=after_episode_id or 0)
        .select_related("patient")
        .order_by("pk")[:limit]
    )


def _at_risk(
    periods: Mapping[int, DevicePeriod], today: Mapping[int, date]
) -> dict[int, PeriodDays]:
    """The patients (of `periods`) whose period stands at risk on their local today, who sent
    no device data today and have no keep-sending nudge today, with where the period stands."""
    if not periods:
        return {}
    standings = period_standings(
        {patient_id: (period, today[patient_id]) for patient_id, period in periods.items()}
    )
    nudged = keep_sending_nudges_on(
        local_days={patient_id: today[patient_id] for patient_id in periods}
    )
    needed = billing_reference().full_period_days
    at_risk = {}
    for patient_id in periods:
        where = standings[patient_id]
        if patient_id in nudged or where.has_data_today:
            continue
        if where.reach == Reach.AT_RISK:
            at_risk[patient_id] = PeriodDays(
                with_data=where.days_with_data, needed=needed, left=where.remaining_days
            )
    return at_risk


def keep_sending_nudges_on(*, local_days: Mapping[int, date]) -> dict[int, str]:
    """For patient id → a local day of theirs (the panel: each row's local today), the
    status of the keep-sending nudge written for that day (pending, sent, failed, cancelled:
    data came before delivery); a patient without one is absent.

    One query, whatever the number of patients, served by the unique (patient, purpose,
    local_day) index of monitoring.Nudge.
    """
    if not local_days:
        return {}
    rows = Nudge.objects.filter(
        patient_id__in=list(local_days),
        purpose=NudgePurpose.KEEP_SENDING,
        local_day__in=set(local_days.values()),
    ).values_list("patient_id", "local_day", "status")
    return {patient_id: status for patient_id, day, status in rows if local_days[patient_id] == day}
