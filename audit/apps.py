from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Record of who did what")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit import receivers  # noqa: F401
