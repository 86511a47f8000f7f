from django.contrib.admin.apps import AdminConfig


class VigilAdminConfig(AdminConfig):
    """django.contrib.admin with Vigil's site (config/admin.py) as `admin.site`, so every
    `@admin.register` lands on the site with throttled, two-factor logins."""

    default_site = "config.admin.VigilAdminSite"

    def ready(self):
        super().ready()
        # config is not an app, so nothing discovers its admin module: register here, once
        # the site exists (registering while config.admin is first imported would re-enter
        # the lazy admin.site and land on a second site object).
        from django.contrib import admin

        from config.admin import register_access_admins

        register_access_admins(admin.site)
