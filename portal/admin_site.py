"""The portal's admin site: Django's, with a teacher's tools in one section of the index and the sidebar.

Rules:
- One section, "Staff tools" (教师工具), first on the page: the pages that are not models (TOOL_PAGES: the
  usage page, ...), then the staff app's models (announcements, failed e-mails) and the course app's. Each
  entry shows only to whom Django (for a model) or its permission (for a page) allows; every page checks
  its own permission again, so this list only decides what is offered.
- A page whose URL does not exist (its app not installed) is left out.
- The other apps follow in Django's order. An app's own page (/admin/course/) still lists only that app.
- Only staff sessions that gave their second factor get in (accounts/otp.py AdminSite, which this extends).
"""

from django.apps import apps
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from accounts import otp

TOOLS_APP = "staff"
MERGED_APPS = ("course",)
# (URL name, label, the permission that page checks): pages, not models, in the order they are listed.
TOOL_PAGES = [
    ("staff_usage", _("Usage"), "accounts.view_usage"),
    ("course_overview_index", _("Class overview"), "course.view_assignment"),
]


class CreatedByStaffMixin:
    """For a ModelAdmin of a model with `created_by`: the staff member who adds an object is its creator, set on
    creation and never a field to pick; a saved object's page shows it read-only."""

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None or "created_by" in fields else (*fields, "created_by")

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        return fields if obj is None or "created_by" in fields else [*fields, "created_by"]


class AdminSite(otp.AdminSite):
    """accounts.otp's site (only staff sessions that gave their second factor get in), with the tools section."""

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list
        tools = [app for app in app_list if app["app_label"] == TOOLS_APP]
        merged = [app for app in app_list if app["app_label"] in MERGED_APPS]
        pages = self._tool_pages(request)
        if not (tools or merged or pages):
            return app_list
        models = pages + [model for app in tools + merged for model in app["models"]]
        section = {
            "name": apps.get_app_config(TOOLS_APP).verbose_name,
            "app_label": TOOLS_APP,
            # The section's heading leads to a page of it that exists for this person.
            "app_url": tools[0]["app_url"] if tools else models[0]["admin_url"],
            "has_module_perms": True,
            "models": models,
        }
        others = [app for app in app_list if app not in tools and app not in merged]
        return [section, *others]

    def _tool_pages(self, request):
        pages = []
        for url_name, label, permission in TOOL_PAGES:
            if not request.user.has_perm(permission):
                continue
            try:
                url = reverse(url_name)
            except NoReverseMatch:
                continue
            pages.append(
                {
                    "name": label,
                    "object_name": url_name,
                    "perms": {"view": True},
                    "admin_url": url,
                    "add_url": None,
                    "view_only": True,
                }
            )
        return pages
