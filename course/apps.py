from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CourseConfig(AppConfig):
    name = "course"
    verbose_name = _("Course")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from course import signals  # noqa: F401
