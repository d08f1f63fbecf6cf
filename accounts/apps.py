from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and invitations")

    def ready(self):
        # The lifecycle's admin pages live next to its models' rules, not in the shared admin.py.
        from accounts import lifecycle_admin, oauth_admin, otp_admin, sessions, setpassword, signals  # noqa: F401

        # After the admin's own ready() (earlier in INSTALLED_APPS) registered the toolkit's admin pages.
        oauth_admin.register()
