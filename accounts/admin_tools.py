"""Staff tools in the admin for a whole class at once: roster import, printable slips, bulk actions.

accounts/admin.py wires these into the model admins (actions, URLs); the rules live elsewhere:
`accounts.roster` (what an import does), `accounts.setpassword` (links and temporary passwords, and who
may issue them), `accounts.roles` (who may change whom; a role is never offered or accepted as a class).

- Bulk actions run one user at a time (save() / groups.add()), so per-user signals fire, such as the token
  revocation on deactivation, and each reports how many users it changed.
- Slips are plain printable HTML pages (templates/accounts/print/): one slip per student or per invite code,
  A4, in the staff member's language (Chinese by default).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import ratelimits, roles, roster, setpassword
from accounts.models import InviteCode, InviteRedemption

User = get_user_model()
# The previewed text goes back in a form field, which must stay under DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
# even after GB18030 becomes UTF-8 (up to 1.5 times longer). 5000 rows take about 300 KB.
MAX_ROSTER_BYTES = 1024 * 1024


def qr_svg(url: str) -> str:
    """An inline SVG QR code of `url` (segno: pure Python, no network, no image files).

    A fixed mask: choosing the best of the eight takes three quarters of the time, and 200 slips must load
    in a second or two; any mask scans.
    """
    import segno

    return segno.make(url, error="m", mask=0).svg_inline(scale=1, border=2, omitsize=True)


def _ids(request) -> list[int]:
    raw = request.GET.get("ids", "")
    return [int(part) for part in raw.split(",") if part.strip().isdigit()]


def _selected(request, queryset) -> list:
    """The objects named by ?ids=, in the order the admin listed them (slips print in that order)."""
    ids = _ids(request)
    order = {pk: i for i, pk in enumerate(ids)}
    return sorted(queryset.filter(pk__in=ids), key=lambda obj: order[obj.pk])


def _ids_url(name: str, objects) -> str:
    return reverse(name) + "?ids=" + ",".join(str(obj.pk) for obj in objects)


# --- Roster import ---------------------------------------------------------------------------------------


class RosterUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Roster file"),
        help_text=gettext_lazy(
            "CSV or tab-separated text with a header row: username, name, email, group. "
            "UTF-8 or GB18030 (Excel's CSV export) both work."
        ),
    )
    group = forms.CharField(
        label=gettext_lazy("Also add everyone to this group"),
        max_length=150,
        required=False,
        help_text=gettext_lazy("Optional; created if it does not exist."),
    )

    def clean_group(self):
        roles.check_class_group_name(self.cleaned_data["group"].strip())
        return self.cleaned_data["group"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ROSTER_BYTES:
            raise forms.ValidationError(_("The file is larger than 1 MB; is it really a roster?"))
        try:
            self.text = roster.decode(upload.read())
            self.rows = roster.parse(self.text)
        except roster.RosterError as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload


class RosterConfirmForm(forms.Form):
    """The previewed file travels back as text, so the confirmed import is exactly what staff saw."""

    text = forms.CharField(widget=forms.HiddenInput, strip=False)
    group = forms.CharField(widget=forms.HiddenInput, required=False, max_length=150)

    def clean_group(self):
        roles.check_class_group_name(self.cleaned_data["group"].strip())
        return self.cleaned_data["group"]

    def clean_text(self):
        try:
            self.rows = roster.parse(self.cleaned_data["text"])
        except roster.RosterError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["text"]


def _report_message(report) -> str:
    counts = report.counts
    return _("%(created)d created, %(updated)d updated, %(unchanged)d unchanged, %(skipped)d skipped.") % counts


def _problems_first(report):
    # With 200 rows the two skipped ones must not hide at the bottom; the line numbers keep the file order.
    return sorted(report.rows, key=lambda row: row.status != roster.SKIPPED)


def import_roster_view(model_admin, request):
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if refused := ratelimits.ADMIN_UPLOADS.refusal(request):
        return refused
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": _("Import a class roster"),
        "status_labels": {
            roster.CREATED: _("created"),
            roster.UPDATED: _("updated"),
            roster.UNCHANGED: _("unchanged"),
            roster.SKIPPED: _("skipped"),
        },
    }
    if request.method == "POST" and "confirm" in request.POST:
        confirm = RosterConfirmForm(request.POST)
        if confirm.is_valid():
            report = roster.import_roster(confirm.rows, extra_group=confirm.cleaned_data["group"], by=request.user)
            if report.changed:
                model_admin.message_user(request, _("Roster imported: ") + _report_message(report), messages.SUCCESS)
            else:
                model_admin.message_user(request, _("Nothing to change: the accounts already match the file."))
            slips_url = _ids_url("admin:accounts_user_slips", report.link_users) if report.link_users else ""
            context.update(
                report=report,
                rows=_problems_first(report),
                done=True,
                slips_url=slips_url,
                summary=_report_message(report),
                group=confirm.cleaned_data["group"],
            )
            return render(request, "admin/accounts/user/import_roster.html", context)
        messages.error(request, _("The preview expired; upload the file again."))
        upload = RosterUploadForm()
    else:
        upload = RosterUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and upload.is_valid():
        group = upload.cleaned_data["group"]
        report = roster.import_roster(upload.rows, extra_group=group, dry_run=True)
        confirm = RosterConfirmForm(initial={"text": upload.text, "group": group})
        context.update(
            report=report, rows=_problems_first(report), confirm=confirm, summary=_report_message(report), group=group
        )
    context["form"] = upload
    return render(request, "admin/accounts/user/import_roster.html", context)


# --- Printable slips --------------------------------------------------------------------------------------


def user_slips_view(model_admin, request):
    """One slip per student: portal address, username, set-password link (and its QR code), expiry."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    users = _selected(request, User.objects)
    allowed = [user for user in users if setpassword.may_issue(request.user, user)]
    slips = []
    for user in allowed:
        link = setpassword.link(user)
        slips.append({"user": user, "link": link, "qr": qr_svg(link)})
    setpassword.record_links_issued(allowed, request=request)
    context = {
        "title": _("Set-password slips"),
        "slips": slips,
        "refused": [user for user in users if user not in allowed],
        "portal_url": settings.PUBLIC_URL + "/",
        "expires": setpassword.link_expiry(),
        "back_url": reverse("admin:accounts_user_changelist"),
    }
    return render(request, "accounts/print/set_password_slips.html", context)


def invite_slips_view(model_admin, request):
    """One slip per invite code: sign-up address, the code, its expiry and uses."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    invites = _selected(request, InviteCode.objects.select_related("group"))
    signup_url = settings.PUBLIC_URL + reverse("signup")
    context = {
        "title": _("Invite code slips"),
        "invites": invites,
        "signup_url": signup_url,
        "qr": qr_svg(signup_url),
        "back_url": reverse("admin:accounts_invitecode_changelist"),
    }
    return render(request, "accounts/print/invite_slips.html", context)


def user_urls(model_admin):
    view = model_admin.admin_site.admin_view
    return [
        path("import/", view(lambda r: import_roster_view(model_admin, r)), name="accounts_user_import"),
        path("slips/", view(lambda r: user_slips_view(model_admin, r)), name="accounts_user_slips"),
    ]


def invite_urls(model_admin):
    view = model_admin.admin_site.admin_view
    return [path("slips/", view(lambda r: invite_slips_view(model_admin, r)), name="accounts_invitecode_slips")]


# --- Bulk actions on users ----------------------------------------------------------------------------------


class ChooseGroupForm(forms.Form):
    group = forms.ModelChoiceField(label=gettext_lazy("Group"), queryset=Group.objects.none(), required=False)
    new_group = forms.CharField(
        label=gettext_lazy("or a new group"),
        max_length=150,
        required=False,
        help_text=gettext_lazy("Type a name to create the group."),
    )

    def __init__(self, *args, allow_new=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = roles.class_groups().order_by("name")
        if not allow_new:
            del self.fields["new_group"]
            self.fields["group"].required = True

    def clean(self):
        data = super().clean()
        name = " ".join((data.get("new_group") or "").split())
        if not data.get("group") and not name and not self.errors:
            raise forms.ValidationError(_("Choose a group or type the name of a new one."))
        if data.get("group") and name:
            raise forms.ValidationError(_("Choose a group or type a new name, not both."))
        if name:
            try:
                roles.check_class_group_name(name)
            except forms.ValidationError as exc:
                self.add_error("new_group", exc)
        data["new_group"] = name
        return data

    def get_group(self) -> Group:
        return self.cleaned_data["group"] or Group.objects.get_or_create(name=self.cleaned_data["new_group"])[0]


def _intermediate(request, model_admin, queryset, *, title, intro, submit, form=None, danger=False, selected_label=""):
    """The in-between page of a bulk action (as Django's delete confirmation): re-posts the selection."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "intro": intro,
        "submit": submit,
        "form": form,
        "danger": danger,
        "selected_label": selected_label or _("Selected users"),
        "queryset": queryset,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return render(request, "admin/accounts/user/action_step.html", context)


def _group_action(model_admin, request, queryset, *, add: bool):
    # Only staff who may create groups are offered a new one (both roles may: accounts.roles).
    allow_new = add and request.user.has_perm("auth.add_group")
    form = ChooseGroupForm(request.POST if "apply" in request.POST else None, allow_new=allow_new)
    if form.is_bound and form.is_valid():
        group = form.get_group()
        count = 0
        for user in queryset.prefetch_related("groups"):
            is_member = group in user.groups.all()
            if add and not is_member:
                user.groups.add(group)
                count += 1
            elif not add and is_member:
                user.groups.remove(group)
                count += 1
        if add:
            text = ngettext("%(n)d user added to %(group)s.", "%(n)d users added to %(group)s.", count)
        else:
            text = ngettext("%(n)d user removed from %(group)s.", "%(n)d users removed from %(group)s.", count)
        model_admin.message_user(request, text % {"n": count, "group": group.name}, messages.SUCCESS)
        return None
    n = queryset.count()
    return _intermediate(
        request,
        model_admin,
        queryset,
        title=_("Add to a group") if add else _("Remove from a group"),
        intro=(
            ngettext("Add %(n)d user to:", "Add %(n)d users to:", n)
            if add
            else ngettext("Remove %(n)d user from:", "Remove %(n)d users from:", n)
        )
        % {"n": n},
        submit=_("Add") if add else _("Remove"),
        form=form,
    )


@admin.action(description=gettext_lazy("Add selected users to a group"), permissions=["change"])
def add_to_group(model_admin, request, queryset):
    return _group_action(model_admin, request, queryset, add=True)


@admin.action(description=gettext_lazy("Remove selected users from a group"), permissions=["change"])
def remove_from_group(model_admin, request, queryset):
    return _group_action(model_admin, request, queryset, add=False)


@admin.action(description=gettext_lazy("Reactivate selected users"), permissions=["change"])
def reactivate_users(model_admin, request, queryset):
    count = 0
    for user in queryset.filter(is_active=False):
        user.is_active = True
        user.save(update_fields=["is_active"])
        count += 1
    model_admin.message_user(
        request, ngettext("%(n)d user reactivated.", "%(n)d users reactivated.", count) % {"n": count}
    )


def confirm_deactivation(model_admin, request, queryset):
    """The page before "Deactivate selected users" does anything (UserAdmin.deactivate_users)."""
    n = queryset.count()
    return _intermediate(
        request,
        model_admin,
        queryset,
        title=_("Deactivate users"),
        intro=ngettext(
            "%(n)d user will be deactivated: they can no longer log in to the portal or JupyterLab, a running "
            "server is stopped and their hub tokens stop working. Their files are kept, and reactivating the "
            "account later restores the login.",
            "%(n)d users will be deactivated: they can no longer log in to the portal or JupyterLab, running "
            "servers are stopped and their hub tokens stop working. Their files are kept, and reactivating the "
            "accounts later restores the login.",
            n,
        )
        % {"n": n},
        submit=_("Deactivate"),
        danger=True,
    )


def _refused_message(request, refused: int) -> None:
    if refused:
        messages.warning(
            request,
            ngettext(
                "%(n)d user left out: deactivated, or a staff account (only a superuser can do that).",
                "%(n)d users left out: deactivated, or staff accounts (only a superuser can do that).",
                refused,
            )
            % {"n": refused},
        )


@admin.action(description=gettext_lazy("Print set-password links for selected users"), permissions=["change"])
def issue_set_password_links(model_admin, request, queryset):
    users = [user for user in queryset.order_by("username") if setpassword.may_issue(request.user, user)]
    _refused_message(request, queryset.count() - len(users))
    if not users:
        return None
    return redirect(_ids_url("admin:accounts_user_slips", users))


@admin.action(description=gettext_lazy("Set a temporary password for selected users"), permissions=["change"])
def set_temporary_passwords(model_admin, request, queryset):
    if "apply" not in request.POST:
        n = queryset.count()
        return _intermediate(
            request,
            model_admin,
            queryset,
            title=_("Set a temporary password"),
            intro=ngettext(
                "%(n)d user gets a new temporary password; their current password stops working. At the next "
                "login they must choose their own. The passwords are shown once, on the next page: print it.",
                "%(n)d users get a new temporary password; their current passwords stop working. At the next "
                "login they must choose their own. The passwords are shown once, on the next page: print it.",
                n,
            )
            % {"n": n},
            submit=_("Set temporary passwords"),
            danger=True,
        )
    users = [user for user in queryset.order_by("username") if setpassword.may_issue(request.user, user)]
    _refused_message(request, queryset.count() - len(users))
    slips = [{"user": user, "password": setpassword.set_temporary_password(user)} for user in users]
    model_admin.message_user(
        request,
        ngettext("%(n)d temporary password set.", "%(n)d temporary passwords set.", len(slips)) % {"n": len(slips)},
        messages.SUCCESS,
    )
    context = {
        "title": _("Temporary passwords"),
        "slips": slips,
        "portal_url": settings.PUBLIC_URL + "/",
        "login_url": settings.PUBLIC_URL + reverse("login"),
        "back_url": reverse("admin:accounts_user_changelist"),
    }
    response = render(request, "accounts/print/temporary_password_slips.html", context)
    response["Cache-Control"] = "no-store"
    return response


USER_ACTIONS = [add_to_group, remove_from_group, reactivate_users, issue_set_password_links, set_temporary_passwords]


# --- Invite codes and groups ----------------------------------------------------------------------------------


@admin.action(description=gettext_lazy("Print selected codes"), permissions=["view"])
def print_invite_slips(model_admin, request, queryset):
    return redirect(_ids_url("admin:accounts_invitecode_slips", queryset.order_by("code")))


class InviteUsedByInline(admin.TabularInline):
    model = InviteRedemption
    fk_name = "invite"
    extra = 0
    can_delete = False
    fields = ("user", "redeemed_at")
    readonly_fields = ("user", "redeemed_at")
    verbose_name = gettext_lazy("account made with this code")
    verbose_name_plural = gettext_lazy("used by")

    def has_view_permission(self, request, obj=None):
        # Only on an existing code's page: a new code has no uses, and the add form stays inline-free.
        return obj is not None and super().has_view_permission(request, obj)

    def get_queryset(self, request):
        # Django filters this with has_view_permission(request), without the code: the rule above would
        # empty it. Whoever sees the code's page may see who used it.
        return InviteRedemption.objects.select_related("user")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class GroupAdmin(DjangoGroupAdmin):
    """Classes and teams, and the two staff roles (accounts.roles): only a superuser sees a group's permissions
    or changes a role; a role's permissions are shown, never edited here (bootstrap sets them)."""

    list_display = ("name", "is_role", "member_count")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("staff_role")
            .annotate(member_count=Count("user", distinct=True))
        )

    def get_fields(self, request, obj=None):
        if obj is not None and roles.is_role_group(obj):
            return ["name", "role_permissions", "members"]
        return ["name", "permissions", "members"] if request.user.is_superuser else ["name", "members"]

    def get_readonly_fields(self, request, obj=None):
        return ("role_permissions", "members")

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or request.user.is_superuser or not roles.is_role_group(obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or request.user.is_superuser or not roles.is_role_group(obj))

    @admin.display(description=gettext_lazy("staff role"), boolean=True)
    def is_role(self, obj):
        return hasattr(obj, "staff_role")

    @admin.display(description=gettext_lazy("permissions"))
    def role_permissions(self, obj):
        names = obj.permissions.select_related("content_type").order_by("content_type__app_label", "codename")
        return format_html(
            '<p>{}</p><ul class="role-permissions">{}</ul>',
            _("Set by bootstrap from accounts/roles.py (the same on every run); change them there."),
            format_html_join("", "<li>{}</li>", ((str(p),) for p in names)),
        )

    @admin.display(description=gettext_lazy("members"), ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description=gettext_lazy("members"))
    def members(self, obj):
        if obj.pk is None:
            return "—"
        users = obj.user_set.order_by("username")
        total = users.count()
        listed = format_html_join(
            "",
            '<li><a href="{}">{}</a>{}</li>',
            (
                (
                    reverse("admin:accounts_user_change", args=[u.pk]),
                    u.username,
                    f" ({u.get_full_name()})" if u.get_full_name() else "",
                )
                for u in users
            ),
        )
        link = reverse("admin:accounts_user_changelist") + f"?groups__id__exact={obj.pk}"
        return format_html(
            '<p><a href="{}">{}</a></p><ul class="group-members">{}</ul>',
            link,
            ngettext("%(n)d member: open in the user list", "%(n)d members: open in the user list", total)
            % {"n": total},
            listed,
        )
