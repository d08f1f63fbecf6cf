from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """INSTALLED_APPS names this instead of "django.contrib.admin" (Django's way to replace the default site): the
    site is portal/admin_site.py's, loaded once the models are (it imports the second factor's models)."""

    default_site = "portal.admin_site.AdminSite"
