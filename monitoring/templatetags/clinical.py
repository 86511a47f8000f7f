"""Template filters and tags for the care team's pages: units and times as clinicians read
them (monitoring/display.py).

    {% load clinical %}
    {{ "mm[Hg]"|display_unit }}                  -> mmHg
    {{ day|clinical_date }}                      -> 6 Dec 2026
    {% patient_time alert.first_triggered_at patient %}
        -> 6 Dec 2026, 14:05 CET · 08:05 EST your time   (the viewer's clock when it differs)
"""

from __future__ import annotations

from django import template

from monitoring.display import display_unit as _display_unit
from monitoring.display import format_date, format_instant_for

register = template.Library()


@register.filter
def display_unit(unit: str) -> str:
    return _display_unit(unit or "")


@register.filter
def clinical_date(day) -> str:
    return format_date(day)


@register.simple_tag(takes_context=True)
def patient_time(context, at, patient) -> str:
    request = context.get("request")
    viewer_zone = getattr(request, "viewer_zone", None)
    return format_instant_for(at, patient.zone, viewer_zone)
