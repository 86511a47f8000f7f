"""The admin site: throttled logins, two-factor authentication, and the audit log's page.

- Login throttling: failed logins are counted in the store the API's token login uses
  too (monitoring.auth: per username and address, per username, per address); past a
  limit the login page answers 429 without checking the password, until the window ends.
- Two-factor (django-otp, TOTP): a staff user with a confirmed authenticator device must
  give its current code with the password. With VIGIL_REQUIRE_2FA set, a session without a
  verified device reaches no admin page: the user is sent to /admin/two-factor/ to enrol a
  device (QR code, or the key as text), which then verifies the session.
- Sessions expire after VIGIL_SESSION_SECONDS of inactivity (settings: SESSION_COOKIE_AGE,
  renewed on every request).
"""

from __future__ import annotations

import base64

import qrcode
import qrcode.image.svg
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django_otp import devices_for_user, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.admin_lists import BoundedChangeListMixin
from monitoring.auth import claim_login_attempt, login_succeeded
from monitoring.models import AuditEvent

# --- Login form: password, then the authenticator code when the user has a device --------


class AdminLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=8,
        help_text="The 6-digit code from your authenticator app, if you set one up.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many failed logins. Wait %(minutes)s minutes and try again.",
        "otp_required": "Enter the current code from your authenticator app.",
        "otp_invalid": "That authenticator code is not valid; enter the current one.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.throttled = False

    def clean(self):
        username = self.cleaned_data.get("username")
        if not (username and self.cleaned_data.get("password")):
            return super().clean()  # the fields' own errors; no password was tried
        if not claim_login_attempt(request=self.request, username=username):
            self.throttled = True
            minutes = int(settings.VIGIL_LOGIN_LOCKOUT.total_seconds() // 60)
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"minutes": minutes}
            )
        # The attempt counts as a failure unless the password and the code are both right.
        cleaned = super().clean()
        self._verify_second_factor(self.get_user())
        login_succeeded(request=self.request, username=username)
        return cleaned

    def _verify_second_factor(self, user) -> None:
        """With a confirmed device, the code must match one; the device that matched is put
        on the user, and django-otp marks the session verified when it logs in."""
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            return
        token = (self.cleaned_data.get("otp_token") or "").strip()
        if not token:
            raise ValidationError(self.error_messages["otp_required"], code="otp_required")
        for device in devices:
            with transaction.atomic():
                # Locked: two logins racing with one code cannot both use it.
                locked = type(device).objects.select_for_update().get(pk=device.pk)
                if locked.verify_token(token):
                    user.otp_device = locked
                    return
        raise ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")


# --- The site -----------------------------------------------------------------------------


def is_verified(request: HttpRequest) -> bool:
    verified = getattr(request.user, "is_verified", None)  # installed by OTPMiddleware
    return bool(verified and verified())


def needs_enrolment(request: HttpRequest) -> bool:
    """A staff session that may do nothing until its user sets up an authenticator."""
    user = request.user
    return (
        settings.VIGIL_REQUIRE_2FA
        and user.is_active
        and user.is_staff
        and not is_verified(request)
        and not user_has_device(user, confirmed=True)
    )


class VigilAdminSite(admin.AdminSite):
    site_header = "Vigil"
    site_title = "Vigil"
    index_title = "Care team workspace"
    login_form = AdminLoginForm
    login_template = "admin/vigil_login.html"

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        if is_verified(request):
            return True
        # A user with an authenticator must have used it in this session, whatever the
        # setting; without one, only when two-factor is not required.
        if user_has_device(request.user, confirmed=True):
            return False
        return not settings.VIGIL_REQUIRE_2FA

    def index(self, request, extra_context=None):
        # A care-team member starts the shift at the triage queue, not a list of models.
        if not request.user.is_superuser and request.user.care_team_memberships.exists():
            return redirect("admin:alerts_alert_changelist")
        return super().index(request, extra_context)

    @method_decorator(never_cache)
    def login(self, request, extra_context=None):
        if request.user.is_authenticated and needs_enrolment(request):
            return redirect("admin:two_factor")
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if getattr(form, "throttled", False):
            response.status_code = 429
        elif request.method == "POST" and response.status_code == 302 and needs_enrolment(request):
            return redirect("admin:two_factor")
        return response

    def get_urls(self):
        # Imported here: program's admin imports models, and this module is imported while
        # the admin app is made ready (config/apps.py).
        from program.admin.panel import panel_urls  # noqa: PLC0415

        return [
            path("two-factor/", self.two_factor_view, name="two_factor"),
            # The care team's panel (program/admin/panel.py), beside the triage queue.
            *panel_urls(self),
            *super().get_urls(),
        ]

    def get_app_list(self, request, app_label=None):
        from program.admin.panel import add_to_app_list  # noqa: PLC0415

        app_list = super().get_app_list(request, app_label)
        return add_to_app_list(app_list) if app_label in (None, "alerts") else app_list

    @method_decorator(never_cache)
    @method_decorator(csrf_protect)
    def two_factor_view(self, request):
        """Set up an authenticator (TOTP) for the logged-in staff user.

        Reachable with a password-only session only while the user has no confirmed device:
        with one, the session must have been verified with it (a stolen password alone
        cannot replace a user's authenticator)."""
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect(f"{reverse('admin:login')}?next={request.path}")
        if user_has_device(user, confirmed=True):
            if not is_verified(request):
                return redirect(f"{reverse('admin:login')}?next={request.path}")
            return self._two_factor_page(request, device=None, enrolled=True)
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
        error = None
        if request.method == "POST":
            token = request.POST.get("otp_token", "").strip()
            with transaction.atomic():
                locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
                verified = bool(token) and locked.verify_token(token)
                if verified:
                    locked.confirmed = True
                    locked.save(update_fields=["confirmed"])
            if verified:
                otp_login(request, locked)
                messages.success(request, "Two-factor authentication is set up.")
                return redirect("admin:index")
            error = "That code is not valid; enter the current one from your app."
        return self._two_factor_page(request, device=device, enrolled=False, error=error)

    def _two_factor_page(self, request, *, device, enrolled, error=None):
        context = {
            **self.each_context(request),
            "title": "Two-factor authentication",
            "enrolled": enrolled,
            "required": settings.VIGIL_REQUIRE_2FA,
            "error": error,
        }
        if device is not None:
            context.update(
                config_url=device.config_url,
                key=base64.b32encode(device.bin_key).decode(),
                qr_svg=qr_svg(device.config_url),
            )
        request.current_app = self.name
        return TemplateResponse(
            request, "admin/two_factor.html", context, status=400 if error else 200
        )


def qr_svg(data: str) -> str:
    """`data` as a QR code: one inline SVG path, scaled by its viewBox (no image file, no
    script, no CDN). The path factory, not django-otp's writer: that one draws prefixed
    <svg:rect> elements, which an HTML page does not render as SVG."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage)
    svg = image.to_string(encoding="unicode")
    # Safe: qrcode wrote every character; the URI is encoded as modules, not as text.
    return mark_safe(svg[svg.index("<svg") :])


# --- The audit log: superusers read it, nobody edits it -----------------------------------


class AuditModelFilter(admin.SimpleListFilter):
    """The model an event is about, offered from the installed models: Django's all-values
    filter would read every audit row for the distinct values (paths, issue 15.2)."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        labels = sorted(model._meta.label_lower for model in apps.get_models())
        return [(label, label) for label in labels]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class AuditEventAdmin(BoundedChangeListMixin, admin.ModelAdmin):
    list_display = [
        "at",
        "actor_link",
        "action",
        "model",
        "object_id",
        "patient_link",
        "fields",
        "surface",
        "method",
        "path",
        "ip",
    ]
    list_filter = ["action", "surface", AuditModelFilter]
    search_fields = ["actor", "=object_id", "path"]
    # The audit log grows with every page viewed (config/admin_lists.py): newest first
    # by the primary key, no count, no date hierarchy, no sorting by a column no index serves.
    ordering = ["-id"]
    sortable_by = ()
    actions = None

    @admin.display(description="who", ordering="actor")
    def actor_link(self, event):
        if event.user_id is None:
            return event.actor
        return format_html('<a href="?user__exact={}">{}</a>', event.user_id, event.actor)

    @admin.display(description="patient", ordering="patient_id")
    def patient_link(self, event):
        # The id, not the row: the patient may have been deleted since.
        if event.patient_id is None:
            return "-"
        return format_html('<a href="?patient__exact={0}">{0}</a>', event.patient_id)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in AuditEvent._meta.fields]

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def register_access_admins(site: admin.AdminSite) -> None:
    if not site.is_registered(AuditEvent):
        site.register(AuditEvent, AuditEventAdmin)
