"""Keep sending: the encouragement to a patient whose current device period may fall short of
the days with device data it needs (NudgePurpose.KEEP_SENDING).

Who is at risk, and when to ask, is the program's to decide (program.outreach, counting with
program.periods); it hands nudge_patient where the period stands (`PeriodDays`). What is
particular to this nudge, and stays here:
- it is about a local day of the patient, not a slot: once per patient and local day
  (Nudge.local_day, held by a unique constraint);
- it has nothing to ask once the patient sent device data that day (a DeviceDay row: a
  physiologic reading measured by a device, as the period counts them), neither when it is
  decided nor when it is delivered;
- the patient acted on it when a device reading was measured within its outcome window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from monitoring.models import DeviceDay, Entry, Metric, Reading


@dataclass(frozen=True)
class PeriodDays:
    """Where the patient's current device period stands, as the nudge may tell them."""

    with_data: int  # days with device data so far in the period
    needed: int  # the days a full period needs (program.codes: full_period_days)
    left: int  # days in which one may still be added, today included


def sent_device_data_on(*, patient_id: int, day: date) -> bool:
    """Whether the patient has device data on their local `day` (one primary-key lookup)."""
    return DeviceDay.objects.filter(patient_id=patient_id, day=day).exists()


def first_device_reading(*, patient_id: int, start: datetime, until: datetime) -> datetime | None:
    """When the patient's first physiologic device reading from `start` to `until` was
    measured (what a DeviceDay counts), or None."""
    return (
        Reading.objects.filter(
            patient_id=patient_id,
            entry=Entry.DEVICE,
            measured_at__gte=start,
            measured_at__lte=until,
        )
        .exclude(metric=Metric.DOSE)
        .order_by("measured_at")
        .values_list("measured_at", flat=True)
        .first()
    )
