from django.contrib import admin

from alerts.models import CareTeam, CareTeamMembership


class MembershipInline(admin.TabularInline):
    model = CareTeamMembership
    extra = 1
    raw_id_fields = ["user"]


@admin.register(CareTeam)
class CareTeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return CareTeam.objects.visible_to(request.user)
