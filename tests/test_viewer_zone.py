"""The viewer's zone comes from the browser's cookie, or is the server's (config/viewer_zone)."""

import zoneinfo

import pytest
from django.test import RequestFactory, override_settings

from config.viewer_zone import viewer_zone_of


@override_settings(TIME_ZONE="UTC")
@pytest.mark.parametrize(
    ("cookie", "zone"),
    [
        ("America%2FNew_York", "America/New_York"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("Not/AZone", "UTC"),
        ("", "UTC"),
        (None, "UTC"),
    ],
)
def test_the_viewers_zone_is_the_reported_one_when_it_is_a_zone(cookie, zone):
    request = RequestFactory().get("/admin/")
    if cookie is not None:
        request.COOKIES["vigil_tz"] = cookie

    assert viewer_zone_of(request) == zoneinfo.ZoneInfo(zone)


@pytest.mark.django_db
def test_an_admin_page_reports_the_zone_with_the_csp_nonce(admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert 'document.cookie = "vigil_tz=" + value' in page
    assert '<script nonce="' in page
