"""The panel: every patient of a care-team member's teams on one page (issue 13, item 1).

    panel_page(*, user, team_id=None, filters=NO_FILTERS, sort=DEFAULT_SORT, page=1,
               page_size=PAGE_SIZE, now=None) -> PanelPage

`user` sees the patients of their care teams (every team for a superuser), or of one of
them (`team_id`; another team raises UnknownTeam). `filters` narrows the rows (all must
hold), `sort` is one of SORTS, optionally with a leading "-" to reverse it (ties by name).
`page` counts from 1 (past the last: EmptyPage). `now` is for tests and benchmarks.
The API (program/views/panel.py) and the admin page (program/admin/panel.py) both call
`panel_standings` → `select` → one page → `panel_rows`, which is all panel_page does.

A constant number of queries whatever the panel's size, in two phases:

1. `panel_standings` (standings.py), for every patient of the teams (6 queries): the
   teams; the patients with their newest physiologic reading, last review and reviewer
   (correlated subqueries, each one index descent); unresolved alerts grouped by patient;
   the episodes running today; the device days of the running periods
   (program.periods.device_days); the care time of the calendar month grouped by patient.
   Filters and sorts run on these, in Python.
2. `panel_rows` (rows.py), for the page's patients only (3 queries): their protocols;
   their last reading of each watched metric and the trend of the main one, as
   annotations (CASE runs a subquery only for the metrics the patient's protocols watch);
   the outreach job's keep-sending nudge of their local today (program.outreach).

Decisions (docs of the panel's columns):

- Open alerts are the unresolved ones, open or acknowledged: what the triage queue shows
  by default (alerts.lifecycle.UNRESOLVED). `highest_severity` is the worst of them.
- Watched metrics: those the rules of the patient's protocols (monitoring/protocols.yaml)
  watch, in protocol order, doses left out (a dose is an event, not a value with a unit;
  adherence has its own alerts). The main metric is the first of them (the first rule's
  metric of the patient's first protocol in ProtocolCode order: weight for heart failure,
  blood pressure for hypertension, glucose for diabetes, INR, SpO2 for COPD).
- Last reading of a metric: the newest by measured_at, looked for in the last RECENT first
  and in the whole history only when none is that recent (the readings are partitioned by
  month: an unbounded "newest" opens every partition). Blood pressure gives systolic and
  diastolic (value null); the unit is the stored canonical one.
- Trend: the last TREND_POINTS values of the main metric within RECENT, oldest first
  (systolic for blood pressure). A display choice, not a clinical number.
- Data (for "no data" and "needs review"): a physiologic reading of any entry (device or
  manual; doses are not data), by measured_at, looked for within RECENT. "No data for N
  days": none measured in the last N × 24 hours, N = settings.VIGIL_PANEL_NO_DATA_DAYS.
- Needs review: an unresolved alert, or data measured after the last review (never
  reviewed: any data within RECENT). No interval of its own: a review covers what it saw.
- Days with data, period end, reach: the device period of the episode running on the
  patient's local today, through program.periods (period_on, device_days, standing), as
  the ledger and the outreach job count them. No running episode: null days, no period,
  `at_risk` false.
- Minutes: the calendar month in the patient's zone; `minutes_this_month` all logged time
  (running timers have none yet), `approved_minutes_this_month` the approved part;
  `interactive_this_month` whether any entry of the month was an interactive
  communication. "Minutes short of 10 / 20" (the 99470 / 99457 minimums of
  program.codes.billing_reference()) looks at the logged minutes of patients with a running
  episode: the team's to-do is the time, approval follows.
- At risk (item 6): the row's flag is program.periods' reach (at_risk or cannot); beside it,
  whether the outreach job encouraged the patient today and how that nudge stands
  (program.outreach.keep_sending_nudges_on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.paginator import Paginator
from django.utils import timezone

from program.panel.rows import TREND_POINTS, LastReading, PanelRow, panel_rows, watched_metrics
from program.panel.standings import (
    DEFAULT_SORT,
    RECENT,
    SORTS,
    PanelFilters,
    PatientStanding,
    UnknownTeam,
    minutes_thresholds,
    month_bounds,
    no_data_days,
    panel_standings,
    select,
    visible_team_ids,
)

__all__ = [
    "DEFAULT_SORT",
    "NO_FILTERS",
    "PAGE_SIZE",
    "RECENT",
    "SORTS",
    "TREND_POINTS",
    "LastReading",
    "PanelFilters",
    "PanelPage",
    "PanelRow",
    "PatientStanding",
    "UnknownTeam",
    "minutes_thresholds",
    "month_bounds",
    "no_data_days",
    "panel_page",
    "panel_rows",
    "panel_standings",
    "select",
    "visible_team_ids",
    "watched_metrics",
]

# Rows per page of panel_page (the admin's; the API pages as the other staff lists do).
PAGE_SIZE = 50
NO_FILTERS = PanelFilters()


# --- One page -----------------------------------------------------------------------------


@dataclass
class PanelPage:
    rows: list[PanelRow]
    count: int  # rows the filters keep, on every page
    number: int
    num_pages: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def panel_page(
    *,
    user,
    team_id: int | None = None,
    filters: PanelFilters = NO_FILTERS,
    sort: str = DEFAULT_SORT,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
) -> PanelPage:
    """One page of the panel (the module's docstring): raises UnknownTeam for a team that
    is not the user's, django.core.paginator.EmptyPage past the last page."""
    now = now or timezone.now()
    kept = select(panel_standings(user=user, team_id=team_id, now=now), filters=filters, sort=sort)
    paginator = Paginator(kept, page_size, allow_empty_first_page=True)
    current = paginator.page(page)
    return PanelPage(
        rows=panel_rows(list(current.object_list), now=now),
        count=paginator.count,
        number=current.number,
        num_pages=paginator.num_pages,
        page_size=page_size,
    )
