from django.urls import path

from alerts import views

urlpatterns = [
    path("care-teams", views.CareTeamListCreateApi.as_view(), name="care-teams"),
]
