"""The panel's admin page (/admin/panel/), beside the triage queue in the navigation.

The same rows as GET /api/v1/panel (program.panel), as a table: each row links to the
patient's page; filter links and sortable column headers; flags written as words, never by
colour alone. No script. The site adds the URL (config.admin.VigilAdminSite.get_urls) and
the navigation entry (add_to_app_list). Audited as the API's list: one event per patient
shown.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin import AdminSite
from django.core.paginator import EmptyPage
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.timesince import timesince

from alerts.models import CareTeam
from alerts.triage import format_value
from monitoring.audit import record_for_patients
from monitoring.display import format_instant
from monitoring.models import AuditAction, Metric, NudgeStatus, Patient
from program import panel
from program.codes import billing_reference
from program.views.panel import PanelQuerySerializer

SORT_COLUMNS = [
    ("name", "Patient"),
    ("severity", "Alerts"),
    ("no_data", "Last readings"),
    ("at_risk", "Days with data"),
    ("minutes", "Minutes this month"),
    ("last_reviewed", "Last reviewed"),
]


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    current: bool


def _query(request: HttpRequest, **changes) -> str:
    """This page's query string with `changes` (None removes a parameter); back to page 1."""
    params = {key: value for key, value in request.GET.items() if key != "page"}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return f"?{urlencode(params)}" if params else "?"


def _filter_links(request: HttpRequest) -> list[Link]:
    short_of = panel.minutes_thresholds()
    clear = {"needs_review": None, "no_data": None, "at_risk": None, "minutes_below": None}
    options = [
        ("All patients", {}),
        ("Needs review", {"needs_review": "true"}),
        (f"No data for {panel.no_data_days()} days", {"no_data": "true"}),
        (f"At risk of < {billing_reference().full_period_days} days", {"at_risk": "true"}),
        *((f"Minutes short of {minutes}", {"minutes_below": str(minutes)}) for minutes in short_of),
    ]
    chosen = {key: request.GET.get(key) for key in clear if request.GET.get(key)}
    return [
        Link(label, _query(request, **(clear | params)), chosen == params)
        for label, params in options
    ]


def _team_links(request: HttpRequest, teams: list[CareTeam]) -> list[Link]:
    current = request.GET.get("team")
    return [
        Link("All my teams", _query(request, team=None), not current),
        *(
            Link(team.name, _query(request, team=str(team.pk)), current == str(team.pk))
            for team in teams
        ),
    ]


def _sort_headers(request: HttpRequest, sort: str) -> list[dict]:
    headers = []
    for key, label in SORT_COLUMNS:
        state = "ascending" if sort == key else "descending" if sort == f"-{key}" else None
        toggled = f"-{key}" if sort == key else key
        headers.append({"label": label, "url": _query(request, sort=toggled), "sort": state})
    return headers


def _reading_cells(row: panel.PanelRow, now: datetime, zone) -> list[dict]:
    cells = []
    for metric, reading in row.last_readings.items():
        label = Metric(metric).label
        if reading is None:
            cells.append({"metric": label, "value": "none yet", "when": "", "age": ""})
            continue
        cells.append(
            {
                "metric": label,
                "value": format_value(
                    metric,
                    value=reading.value,
                    systolic=reading.systolic,
                    diastolic=reading.diastolic,
                ),
                "when": format_instant(reading.measured_at, zone),
                "measured_at": reading.measured_at.isoformat(),
                "age": f"{timesince(reading.measured_at, now, depth=1)} ago",
            }
        )
    return cells


def _sparkline(values: list[float]) -> str:
    """Polyline points in a 100 × 24 box, or "" for fewer than two values."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = 100 / (len(values) - 1)
    return " ".join(
        f"{index * step:.1f},{22 - (value - low) / span * 20:.1f}"
        for index, value in enumerate(values)
    )


def _row_context(row: panel.PanelRow, now: datetime) -> dict:
    standing = row.standing
    zone = zoneinfo.ZoneInfo(standing.timezone)
    return {
        "row": row,
        "standing": standing,
        "patient_url": reverse("admin:monitoring_patient_change", args=[standing.patient_id]),
        "readings": _reading_cells(row, now, zone),
        "main_metric": Metric(row.main_metric).label if row.main_metric else "",
        "nudge_status": NudgeStatus(row.keep_sending_nudge).label.lower()
        if row.keep_sending_nudge
        else "",
        "trend_points": _sparkline(row.trend),
        "trend_text": " → ".join(f"{value:g}" for value in row.trend),
        "full_period_days": billing_reference().full_period_days,
        "reviewed_when": format_instant(standing.last_reviewed_at, zone)
        if standing.last_reviewed_at
        else "",
    }


def panel_view(request: HttpRequest, *, site: AdminSite) -> TemplateResponse:
    query = PanelQuerySerializer(data=request.GET, context={"request": request})
    teams = list(CareTeam.objects.visible_to(request.user).only("id", "name"))
    context = {
        **site.each_context(request),
        "title": "Panel",
        "teams": _team_links(request, teams),
        "filters": _filter_links(request),
        "no_data_days": panel.no_data_days(),
    }
    if not query.is_valid():
        context["errors"] = [
            f"{name}: {' '.join(str(reason) for reason in reasons)}"
            for name, reasons in query.errors.items()
        ]
        return TemplateResponse(request, "admin/program/panel.html", context, status=400)
    sort = query.validated_data["sort"]
    page_number = request.GET.get("page", "1")
    now = timezone.now()
    try:
        page = panel.panel_page(
            user=request.user,
            team_id=query.validated_data.get("team"),
            filters=query.filters(),
            sort=sort,
            page=int(page_number) if page_number.isascii() and page_number.isdigit() else 0,
            now=now,
        )
    except EmptyPage as error:
        raise Http404("No such page.") from error
    except panel.UnknownTeam:  # left the team since the query was checked
        context["errors"] = ["team: Not one of your care teams."]
        return TemplateResponse(request, "admin/program/panel.html", context, status=400)
    record_for_patients(
        user=request.user,
        patient_ids=[row.standing.patient_id for row in page.rows],
        action=AuditAction.VIEW,
        what=Patient,
        request=request,
    )
    context.update(
        page=page,
        rows=[_row_context(row, now) for row in page.rows],
        headers=_sort_headers(request, sort),
        previous_url=_query(request, page=str(page.number - 1)) if page.has_previous else "",
        next_url=_query(request, page=str(page.number + 1)) if page.has_next else "",
    )
    return TemplateResponse(request, "admin/program/panel.html", context)


def panel_urls(site: AdminSite) -> list:
    def view(request):
        return panel_view(request, site=site)

    return [path("panel/", site.admin_view(view), name="panel")]


def add_to_app_list(app_list: list[dict]) -> list[dict]:
    """The panel, right after the triage queue (the alerts app's Alert entry), for those who
    see the queue."""
    for app in app_list:
        if app["app_label"] != "alerts":
            continue
        models = app["models"]
        at = next((i for i, model in enumerate(models) if model["object_name"] == "Alert"), None)
        if at is not None:
            models.insert(
                at + 1,
                {
                    "name": "Panel",
                    "object_name": "Panel",
                    "admin_url": reverse("admin:panel"),
                    "add_url": None,
                    "view_only": True,
                    "perms": {"view": True},
                },
            )
    return app_list
