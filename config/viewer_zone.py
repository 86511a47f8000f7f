"""The viewer's own time zone, for the pages that show a patient's times beside the viewer's.

The browser reports its zone once (config/templates/admin/base_site.html sets the
`vigil_tz` cookie from Intl.DateTimeFormat); this middleware reads it as
`request.viewer_zone` — a ZoneInfo, or the server's TIME_ZONE when the cookie is missing or
names no zone (the cookie is client input: anything else is ignored).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from monitoring.display import zone_named

COOKIE = "vigil_tz"


def viewer_zone_of(request: HttpRequest) -> zoneinfo.ZoneInfo:
    reported = zone_named(unquote(request.COOKIES.get(COOKIE, "")))
    return reported or zoneinfo.ZoneInfo(settings.TIME_ZONE)


class ViewerZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.viewer_zone = viewer_zone_of(request)
        return self.get_response(request)
