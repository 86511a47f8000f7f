"""Staff users in the admin: losing access, or the password, revokes their API tokens."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from monitoring.auth import revoke_staff_tokens

User = get_user_model()


class StaffUserAdmin(UserAdmin):
    """Django's user admin. Saving a user who is not active staff (deactivated, or no longer
    staff) revokes their staff API tokens, and so does setting a new password here: a
    reactivated account or a restored staff flag brings no old token back. A password
    changed anywhere else is caught too: monitoring.auth refuses, and revokes, a token whose
    user's password changed since it was issued."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and not (obj.is_active and obj.is_staff):
            revoke_staff_tokens(user=obj)

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the new one saved
            user = self.get_object(request, unquote(id))
            if user is not None:
                revoke_staff_tokens(user=user)
        return response


# django.contrib.auth's admin registered Django's UserAdmin (auth is installed before
# monitoring, so its admin module is imported first).
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
