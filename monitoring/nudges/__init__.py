"""Nudges to the patient: choosing, timing and delivering them.

A nudge is written only when the patient may be messaged now (availability.py: quiet hours,
daily cap, minimum gap, which pace encouragement; a critical plan's due dose is reminded of
every time) and has not already done what it would ask for. Its variant is chosen
per patient (policy.py: Thompson sampling over the patient's record with each variant, from a
population prior, with warm-up and probability bounds), and the whole decision is logged in
`Nudge.decision`. Delivery is enqueued after commit (delivery.py); the outcome settles once
its window closes (outcomes.py) and feeds the patient's record. Misses may escalate to the
care team (escalation.py).

Modules: decision.py (nudge_patient: whether, which variant, which channel), texts.py (the
words), sweeps.py (the reminder sweep, missed slots, the streak sweep), availability.py,
policy.py, outcomes.py, streaks.py, keep_sending.py, escalation.py, delivery.py.

Streaks (streaks.py): the run of consecutive local days, ending yesterday, on which the patient
had slots and did every one (days without slots neither count nor break it). At 3, 7, 14, 30,
60 and 90 days it earns a streak nudge, once per milestone of one streak, in the patient's
late morning (STREAK_LOCAL_HOURS) of the day after: `nudge_streaks`, run by beat, looks at
patients whose local time is in that window and retries on each run while they are unavailable.

Keep sending (keep_sending.py): a patient whose current device period may fall short of the
days with device data it needs, and who sent none yet today, gets an encouragement once per
local day; the program decides who and when (program.outreach) and passes where the period
stands (`PeriodDays`). Acted on: a device reading within OUTCOME_WINDOW.
"""

from monitoring.nudges.decision import nudge_patient
from monitoring.nudges.keep_sending import PeriodDays
from monitoring.nudges.outcomes import MISSED_PURPOSES, settle_nudge_outcomes
from monitoring.nudges.sweeps import handle_missed_slot, nudge_streaks, run_reminder_sweep
from monitoring.nudges.texts import PLACEHOLDERS, placeholders_for, placeholders_of

__all__ = [
    "MISSED_PURPOSES",
    "PLACEHOLDERS",
    "PeriodDays",
    "handle_missed_slot",
    "nudge_patient",
    "nudge_streaks",
    "placeholders_for",
    "placeholders_of",
    "run_reminder_sweep",
    "settle_nudge_outcomes",
]
