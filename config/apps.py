from django.contrib.admin.apps import AdminConfig


class VigilAdminConfig(AdminConfig):
    """django.contrib.admin with Vigil's site (config/admin.py) as `admin.site`, so every
    `@admin.register` lands on the site with throttled, two-factor logins."""

    default_site = "config.admin.VigilAdminSite"

    def ready(self):
        super().ready()
        # config is not an app, so nothing discovers its admin module: register here, once
        # the site exists (registering while config.admin is first imported would re-enter
        # the lazy admin.site and land on a second site object). Imported here, not at the
        # top: Django forbids importing models (config.admin does) before the app registry
        # is ready, and ready() is that moment.
        from django.contrib import admin  # noqa: PLC0415

        from config.admin import register_access_admins  # noqa: PLC0415

        register_access_admins(admin.site)
