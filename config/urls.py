from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health

urlpatterns = [
    path("api/v1/", include("monitoring.urls")),
    path("api/v1/", include("alerts.urls")),
    # The RPM program: episodes, time entries, reviews, billing, the panel (issue 13).
    path("api/v1/", include("program.urls")),
    # interop: FHIR R4 (/fhir/…) and Nightscout (/api/v1/patients/{id}/nightscout,
    # /nightscout/<slug>/api/v1/…).
    path("", include("interop.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Our template: drf-spectacular's, with the CSP nonce on its inline script.
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", template_name="api/docs.html"),
        name="docs",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

handler400 = "config.api.bad_request"
handler404 = "config.api.not_found"
handler500 = "config.api.server_error"
