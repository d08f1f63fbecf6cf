from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and invitations")

    def ready(self):
        # The lifecycle's admin pages live next to its models' rules, not in the shared admin.py.
        from accounts import lifecycle_admin, otp_admin, sessions, signals  # noqa: F401


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, whose default site (`admin.site`) lets in only staff sessions that gave their second
    factor (accounts/otp.py). Named in INSTALLED_APPS instead of django.contrib.admin."""

    default = False  # AccountsConfig stays this module's one default
    default_site = "accounts.otp.AdminSite"
