"""The record in the admin: superusers only (teachers and TAs get 403, whatever permissions they hold), read-only,
filtered by kind, time, actor and account, searched by name or address, exported as CSV.

The CSV is UTF-8 with a byte-order mark (Excel on Chinese Windows shows the names garbled without it) and every
cell that a spreadsheet would run as a formula (=, +, -, @ first) starts with an apostrophe: a User-Agent or a
name is typed by whoever logs in or signs up, and must never become a formula on a superuser's machine.
"""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import kinds
from audit.models import Event

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class KindFilter(admin.SimpleListFilter):
    title = gettext_lazy("kind")
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return kinds.Kind.choices

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


def _superuser(request) -> bool:
    return request.user.is_active and request.user.is_superuser


def _local(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _detail_text(detail: dict) -> str:
    return json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, cls=DjangoJSONEncoder)


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def csv_response(queryset, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    header = [_("time"), _("kind"), _("what"), _("actor"), _("account"), _("address"), _("device"), _("details")]

    def lines():
        yield "\ufeff" + writer.writerow(header)
        for event in queryset.iterator(chunk_size=2000):
            row = [
                _local(event.time),
                event.kind,
                event.kind_label,
                event.actor_name,
                event.subject_name,
                event.address,
                event.device,
                _detail_text(event.detail),
            ]
            yield writer.writerow([safe_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("when", "what", "actor_link", "subject_link", "address", "device_short", "details")
    list_filter = (
        KindFilter,
        ("time", admin.DateFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        ("subject", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("actor_name", "subject_name", "subject__first_name", "subject__last_name", "address")
    list_per_page = 100
    actions = ["export_selected"]
    fields = ("when", "what", "actor_name", "subject_name", "address", "device", "details")
    readonly_fields = fields
    change_list_template = "admin/audit/event/change_list.html"

    # --- superusers only, read-only ---
    def has_module_permission(self, request):
        return _superuser(request)

    def has_view_permission(self, request, obj=None):
        return _superuser(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- columns ---
    @admin.display(description=gettext_lazy("time"), ordering="time")
    def when(self, obj):
        return _local(obj.time)

    @admin.display(description=gettext_lazy("what"), ordering="kind")
    def what(self, obj):
        return obj.kind_label

    def _person(self, field, pk, name):
        if not name:
            return "—"
        if pk is None:
            return name
        url = reverse("admin:audit_event_changelist") + f"?{field}__id__exact={pk}"
        return format_html('<a href="{}">{}</a>', url, name)

    @admin.display(description=gettext_lazy("actor"), ordering="actor_name")
    def actor_link(self, obj):
        return self._person("actor", obj.actor_id, obj.actor_name)

    @admin.display(description=gettext_lazy("account"), ordering="subject_name")
    def subject_link(self, obj):
        return self._person("subject", obj.subject_id, obj.subject_name)

    @admin.display(description=gettext_lazy("device"))
    def device_short(self, obj):
        return obj.device[:60] + ("…" if len(obj.device) > 60 else "")

    @admin.display(description=gettext_lazy("details"))
    def details(self, obj):
        items = sorted((obj.detail or {}).items())
        return format_html_join(
            "",
            '<div class="audit-detail">{}: {}</div>',
            ((name, json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)) for name, value in items),
        )

    # --- CSV ---
    def get_urls(self):
        view = self.admin_site.admin_view(self.export_view)
        return [path("export/", view, name="audit_event_export"), *super().get_urls()]

    def export_view(self, request):
        """Everything the change list shows with the same filters and search, on one CSV (not one page)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.GET = request.GET.copy()
        request.GET.pop("p", None)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return redirect(reverse("admin:audit_event_changelist") + "?e=1")
        return csv_response(changelist.get_queryset(request), f"record-{timezone.localdate():%Y%m%d}.csv")

    @admin.action(description=gettext_lazy("Export selected entries as CSV"), permissions=["view"])
    def export_selected(self, request, queryset):
        return csv_response(queryset, f"record-{timezone.localdate():%Y%m%d}.csv")
