"""CSV exports for staff: accounts and invite codes, from the admin (an action on the selected rows, and a
button for everything the list shows with its filters and search) and, for codes, `manage.py export_invites`.

Rules:
- Whoever may view a list may export it: the model's view permission (both roles may view users and codes,
  accounts.roles), checked on the server; anyone else gets a 403.
- Excel must show Chinese names: UTF-8 with a byte-order mark by default (Excel 2016 and later, WPS,
  LibreOffice), or GB18030 for older Excel on Chinese Windows. Both encode every character.
- A cell is data, never a formula: a value that starts with = + - @ (or a tab or carriage return) gets a
  leading apostrophe (OWASP "CSV injection"), since students choose their own e-mail address.
- Accounts: the groups column lists classes and teams only, never a staff role; the headers are ones the
  roster import reads (学号, 姓名, 邮箱, 班级), so an exported class can come back as a roster.
- Times are in the portal's time zone (Beijing time), as "YYYY-MM-DD HH:MM".
"""

from __future__ import annotations

import copy
import csv
import io

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from accounts import roles
from accounts.admin_tools import _intermediate

ENCODINGS = {
    "utf-8": ("utf-8-sig", gettext_lazy("UTF-8 (Excel 2016 and later, WPS, LibreOffice)")),
    "gb18030": ("gb18030", gettext_lazy("GB18030 (older Excel on Chinese Windows)")),
}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def local_time(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def csv_text(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)  # "\r\n" line ends, as Excel writes them
    writer.writerow([cell(value) for value in header])
    writer.writerows([cell(value) for value in row] for row in rows)
    return out.getvalue()


def csv_response(name: str, header, rows, encoding: str = "utf-8") -> HttpResponse:
    codec = ENCODINGS[encoding][0]
    filename = f"{name}-{timezone.localdate():%Y%m%d}.csv"
    response = HttpResponse(csv_text(header, rows).encode(codec), content_type=f"text/csv; charset={codec}")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["Cache-Control"] = "no-store"
    return response


class ExportForm(forms.Form):
    encoding = forms.ChoiceField(
        label=gettext_lazy("Encoding"),
        choices=[(key, label) for key, (_codec, label) in ENCODINGS.items()],
        initial="utf-8",
        widget=forms.RadioSelect,
        help_text=gettext_lazy("If Chinese names look garbled in Excel, export again with GB18030."),
    )


# --- what goes in the files ---------------------------------------------------------------------------


def user_header() -> list[str]:
    return [
        pgettext("CSV column", "username"),
        pgettext("CSV column", "name"),
        pgettext("CSV column", "email"),
        pgettext("CSV column", "groups"),
        pgettext("CSV column", "active"),
        pgettext("CSV column", "last login"),
        pgettext("CSV column", "date joined"),
    ]


def user_rows(users) -> list[list]:
    # to_attr: the admin's queryset already prefetches every group (roles included) as "groups".
    classes = Prefetch("groups", queryset=roles.class_groups().order_by("name"), to_attr="classes")
    users = users.prefetch_related(classes)
    yes, no = pgettext("CSV value", "yes"), pgettext("CSV value", "no")
    return [
        [
            user.username,
            user.get_full_name(),
            user.email,
            "; ".join(group.name for group in user.classes),
            yes if user.is_active else no,
            local_time(user.last_login),
            local_time(user.date_joined),
        ]
        for user in users
    ]


# The command's header (machine-readable, unchanged since it was written); the admin's is translated.
INVITE_COLUMNS = ["code", "status", "uses", "max_uses", "expires_at", "group", "note", "created_at", "signup_url"]
INVITE_STATUSES = {
    "usable": gettext_lazy("Usable"),
    "inactive": gettext_lazy("Deactivated"),
    "expired": gettext_lazy("Expired"),
    "used_up": gettext_lazy("Used up"),
}


def invite_status(invite) -> str:
    problem = invite.problem()
    return "usable" if problem is None else problem.code


def invite_header() -> list[str]:
    labels = {
        "code": pgettext("CSV column", "code"),
        "status": pgettext("CSV column", "status"),
        "uses": pgettext("CSV column", "uses"),
        "max_uses": pgettext("CSV column", "maximum uses"),
        "expires_at": pgettext("CSV column", "expires at"),
        "group": pgettext("CSV column", "group"),
        "note": pgettext("CSV column", "note"),
        "created_at": pgettext("CSV column", "created at"),
        "signup_url": pgettext("CSV column", "sign-up address"),
    }
    return [labels[column] for column in INVITE_COLUMNS]


def invite_rows(invites, *, translate: bool = False) -> list[list]:
    """One row per code, in INVITE_COLUMNS order; `translate` gives the status in the staff's language."""
    signup_url = settings.PUBLIC_URL + reverse("signup")
    rows = []
    for invite in invites.select_related("group"):
        status = invite_status(invite)
        rows.append(
            [
                invite.code,
                str(INVITE_STATUSES[status]) if translate else status,
                invite.use_count,
                "" if invite.max_uses is None else invite.max_uses,
                local_time(invite.expires_at),
                invite.group.name if invite.group else "",
                invite.note,
                local_time(invite.created_at),
                signup_url,
            ]
        )
    return rows


def _file(model_admin, queryset, encoding):
    if model_admin.model._meta.model_name == "invitecode":
        return csv_response("invite-codes", invite_header(), invite_rows(queryset, translate=True), encoding)
    return csv_response("accounts", user_header(), user_rows(queryset), encoding)


# --- in the admin ---------------------------------------------------------------------------------------


@admin.action(description=gettext_lazy("Export selected as CSV"), permissions=["view"])
def export_selected(model_admin, request, queryset):
    """An admin action for users and invite codes: choose the encoding, then download the selection."""
    form = ExportForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        return _file(model_admin, queryset, form.cleaned_data["encoding"])
    n = queryset.count()
    return _intermediate(
        request,
        model_admin,
        queryset,
        title=_("Export as CSV"),
        intro=ngettext("Export %(n)d selected row as a CSV file.", "Export %(n)d selected rows as a CSV file.", n)
        % {"n": n},
        submit=_("Download CSV"),
        form=form,
        selected_label=_("Selected rows"),
    )


def _listed(model_admin, request, filters):
    """What the change list shows with these filters, search and ordering, on every page."""
    listed = copy.copy(request)
    listed.GET = filters
    return model_admin.get_changelist_instance(listed).queryset


def export_view(model_admin, request):
    """The change list's "Export CSV" button: the listed rows, after choosing the encoding."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    opts = model_admin.model._meta
    filters = request.GET.copy()
    for name in ("encoding", "export", "p"):
        filters.pop(name, None)
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    try:
        queryset = _listed(model_admin, request, filters)
    except IncorrectLookupParameters:
        messages.error(request, _("These filters cannot be exported; choose them again in the list."))
        return redirect(changelist)
    form = ExportForm(request.GET if "export" in request.GET else None)
    if form.is_bound and form.is_valid():
        return _file(model_admin, queryset, form.cleaned_data["encoding"])
    n = queryset.count()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": _("Export as CSV"),
        "intro": ngettext(
            "Export the %(n)d row the list shows (with its filters and search) as a CSV file.",
            "Export the %(n)d rows the list shows (with its filters and search) as a CSV file.",
            n,
        )
        % {"n": n},
        "form": form,
        "filters": filters,
        "back_url": changelist + ("?" + filters.urlencode() if filters else ""),
    }
    return render(request, "admin/accounts/export.html", context)


def export_urls(model_admin):
    opts = model_admin.model._meta
    view = model_admin.admin_site.admin_view(lambda request: export_view(model_admin, request))
    return [path("export/", view, name=f"{opts.app_label}_{opts.model_name}_export")]
