"""Measurement schedules and medication plans: slots in the patient's local time, protocol
defaults, opening slots as they fall due, and fulfilling slots from readings.

A schedule (or plan) lists local clock times and weekdays. Each occurrence is a Slot row,
created when the sweep finds it due (or earlier, by a reading that answers it), unique per
(schedule, due_at), so a slot exists once however many sweeps run. `next_slot_at` is the due
time of the next slot the sweep has not opened yet: the deadline column the sweep claims.

Times are stored in UTC and interpreted in the patient's time zone: a 07:00 slot is at 07:00
local on both sides of a daylight-saving change.

- slots.py      slots_between and validation (pure)
- plans.py      protocol defaults (../schedules.yaml), adding and changing schedules and plans
- due.py        opening due slots, claiming each slot's reminder and miss once
- fulfilment.py fulfil_slots, active_owners_of (send_active_owners), planned_doses

Schedules sit below evaluation (which fulfils slots) and nudges: the reminder sweep, which
nudges patients about these slots, is monitoring.nudges.run_reminder_sweep.
"""

from monitoring.schedules.fulfilment import (
    active_owners_of,
    fulfil_slots,
    planned_doses,
    send_active_owners,
)
from monitoring.schedules.plans import (
    add_measurement_schedule,
    add_medication_plan,
    apply_protocol_schedules,
    change_schedule,
    schedule_templates,
)
from monitoring.schedules.slots import (
    MAX_WINDOW_MINUTES,
    clean_clock_times,
    clean_days_of_week,
    clean_window_minutes,
    first_due_at,
    reschedule,
    slots_between,
)

__all__ = [
    "MAX_WINDOW_MINUTES",
    "active_owners_of",
    "add_measurement_schedule",
    "add_medication_plan",
    "apply_protocol_schedules",
    "change_schedule",
    "clean_clock_times",
    "clean_days_of_week",
    "clean_window_minutes",
    "first_due_at",
    "fulfil_slots",
    "planned_doses",
    "reschedule",
    "schedule_templates",
    "send_active_owners",
    "slots_between",
]
