"""The RPM billing ledger under the 2026 code set: what each episode may bill, and why.

Every threshold comes from program.codes.billing_reference() (monitoring/rpm_billing.yaml);
device periods and days with data from program.periods, so the panel, the outreach job and
the ledger agree. Lines (program.models.LedgerLine):

- device supply, per device period of an episode: the distinct days with device data
  (DeviceDay, the patient's zone) choose 99445 (2-15) or 99454 (16-30) — one line per period,
  so never both. A period with 0-1 days still gets a line (not billable, "fewer than 2 days
  with data") so the ledger shows every period and why it earns nothing.
- set-up (99453), once per episode: consent and >= setup min_days days with data in the
  episode's first device period. Billable as soon as both hold (nothing later undoes them).
- treatment management, per calendar month (the patient's zone) of an episode: approved
  minutes of the time entries started in the month and inside the episode -> 99470 (10-19),
  or 99457 + 99458 x each further full 20 minutes; never 99470 with 99457. One line per
  episode-month even below 10 minutes (a 99470 line: accruing, or not billable with the
  reason), so the month's standing is always shown. Unapproved minutes are in the evidence
  and do not count.

Statuses: accruing (the period or month is still running — its end is today or later in the
patient's zone — and nothing rules it out yet), billable (closed, or 99453 once met),
not_billable (+ reason), exported (frozen). Reasons, in the order they are checked: no
consent recorded; fewer than N days / minutes; no interactive communication; another
practitioner (or another episode of the patient) billed the overlapping device period / the
month.

Engineering choices (monitoring/rpm_billing.yaml `counting`, and docs for the closing note):
- Which month a line belongs to (the ledger's month, its export): device and set-up lines
  the month their period ends in; management lines their calendar month.
- Device supply once per patient per 30 days: two device periods of different episodes of
  one patient conflict when their 30-day windows from their starts overlap (the episode's
  end clips the period, not the 30 days the code covers). The earlier period bills; an
  exported line always holds. Treatment management once per patient per month: the
  episode that started first bills; an exported one always holds. The check looks at the
  episodes within two device periods before the month (a chain of three short episodes
  inside 60 days may be judged differently by two neighbouring months' runs).
- Exported lines are frozen by group: once any line of a device period, an episode's
  set-up or an episode-month is exported, later changes to the records do not re-bill that
  group (a correction is a manual matter with the billing system).
- Recomputation replaces the lines not exported, in one transaction per chunk of patients
  (all episodes of a patient in the same chunk), with the chunk's episodes locked
  (SELECT ... FOR NO KEY UPDATE, in id order) before anything is read: two runs, or a run
  and an export, never interleave on one episode. A constant number of queries per chunk.

Modules: months (Month), records (what the plan reads, in a constant number of queries),
lines (what the rules share), device (99445/99454, 99453), management (99470, 99457,
99458), plan (plan_ledger: the records -> the lines, no writes), reading (the month's ledger
and one patient's month, no writes), store (recompute_ledger, export_ledger).
"""

from program.ledger.lines import Plan, PlannedLine, in_month
from program.ledger.management import management_codes
from program.ledger.months import Month
from program.ledger.plan import plan_ledger
from program.ledger.reading import (
    DevicePeriodSummary,
    PatientBilling,
    month_ledger,
    patient_billing,
)
from program.ledger.records import Records, context_start
from program.ledger.store import LedgerRun, export_ledger, recompute_ledger

__all__ = [
    "DevicePeriodSummary",
    "LedgerRun",
    "Month",
    "PatientBilling",
    "Plan",
    "PlannedLine",
    "Records",
    "context_start",
    "export_ledger",
    "in_month",
    "management_codes",
    "month_ledger",
    "patient_billing",
    "plan_ledger",
    "recompute_ledger",
]
