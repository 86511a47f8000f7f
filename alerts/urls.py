from django.urls import path

from alerts import views

urlpatterns = [
    path("care-teams", views.CareTeamListCreateApi.as_view(), name="care-teams"),
    path("alerts", views.AlertListApi.as_view(), name="alerts"),
    path(
        "alerts/<int:alert_id>/acknowledge",
        views.AlertAcknowledgeApi.as_view(),
        name="alert-acknowledge",
    ),
    path("alerts/<int:alert_id>/resolve", views.AlertResolveApi.as_view(), name="alert-resolve"),
]
