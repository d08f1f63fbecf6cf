"""Staff admin: users (with the invite they used), invite codes (status, batch generation), groups.

Who may change whom, and which fields only a superuser gets, is `accounts.roles`; the hooks below apply it.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import F
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import admin_tools, expiry, exports, roles
from accounts.approval import AwaitingApprovalFilter, approve_users
from accounts.forms import AdminUserChangeForm, AdminUserCreationForm, GenerateInvitesForm
from accounts.lifecycle_admin import DeletesAccountsWithTheirTokens
from accounts.models import InviteCode, InviteRedemption, User, record_invites_made
from accounts.password_forms import AdminPasswordChangeForm
from audit.kinds import Kind
from audit.records import record
from portal.admin_site import CreatedByStaffMixin


class RedemptionInline(admin.StackedInline):
    model = InviteRedemption
    fk_name = "user"
    extra = 0
    can_delete = False
    readonly_fields = ("invite", "redeemed_at")
    verbose_name_plural = _("invite used at sign-up")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DeletesAccountsWithTheirTokens, DjangoUserAdmin):
    form = AdminUserChangeForm
    add_form = AdminUserCreationForm
    change_password_form = AdminPasswordChangeForm
    inlines = [RedemptionInline]
    list_display = (
        "username",
        "full_name",
        "is_active",
        "is_staff",
        "invite_used",
        "group_names",
        "date_joined",
        "last_login",
    )
    list_filter = (AwaitingApprovalFilter, "is_active", "is_staff", "groups", "redemption__invite")
    search_fields = ("username", "email", "first_name", "last_name", "redemption__invite__code")
    list_select_related = ("redemption__invite",)
    change_list_template = "admin/accounts/user/change_list.html"
    # Set by the "temporary password" action; tick it to make someone choose a new password at the next login.
    fieldsets = (*DjangoUserAdmin.fieldsets, (_("Temporary password"), {"fields": ("must_change_password",)}))
    actions = ["deactivate_users", approve_users, *admin_tools.USER_ACTIONS, exports.export_selected]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_urls(self):
        return admin_tools.user_urls(self) + exports.export_urls(self) + super().get_urls()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            record(Kind.ACCOUNT_CREATED, subject=obj, request=request)

    # --- accounts.roles: protected accounts are read-only, superuser-only fields are left out ---
    def has_change_permission(self, request, obj=None):
        # Also guards Django's own password page (/admin/accounts/user/<id>/password/), which asks this.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or roles.may_manage(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or roles.may_manage(request.user, obj))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        fieldsets = roles.without_superuser_fields(fieldsets)
        if obj is not None and not roles.may_manage(request.user, obj):
            # Read-only page: leave out the password and its "reset password" button, which would only lead
            # to a refusal.
            fieldsets = roles.without_fields(fieldsets, ("password",))
        return fieldsets

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = roles.class_groups()
            kwargs["help_text"] = _("The classes and teams this user belongs to.")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if request.user.is_superuser:
            return actions
        # Read-only actions (export) act on whatever the staff member may see; the others skip protected accounts.
        return {
            name: (
                func if set(getattr(func, "allowed_permissions", ())) == {"view"} else roles.on_manageable_users(func),
                name,
                text,
            )
            for name, (func, name, text) in actions.items()
        }

    @admin.display(description=_("name"), ordering="first_name")
    def full_name(self, obj):
        return obj.get_full_name() or "—"

    @admin.display(description=_("invite code"), ordering="redemption__invite__code")
    def invite_used(self, obj):
        redemption = getattr(obj, "redemption", None)
        return redemption.invite.code if redemption else "—"

    @admin.display(description=_("groups"))
    def group_names(self, obj):
        return ", ".join(group.name for group in obj.groups.all()) or "—"

    @admin.action(description=_("Deactivate selected users"), permissions=["change"])
    def deactivate_users(self, request, queryset):
        queryset = queryset.exclude(pk=request.user.pk).filter(is_active=True)
        if "apply" not in request.POST and queryset.exists():
            return admin_tools.confirm_deactivation(self, request, queryset)
        # One save() per user (not a bulk update) so per-user signals, such as token revocation, run.
        count = 0
        for user in queryset:
            user.is_active = False
            user.save(update_fields=["is_active"])
            count += 1
        self.message_user(
            request, ngettext("%(n)d user deactivated.", "%(n)d users deactivated.", count) % {"n": count}
        )


class InviteStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("usable", _("Usable")),
            ("expired", _("Expired")),
            ("used_up", _("Used up")),
            ("inactive", _("Deactivated")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "usable":
            return queryset.usable(now)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "used_up":
            return queryset.filter(max_uses__isnull=False, use_count__gte=F("max_uses"))
        if self.value() == "inactive":
            return queryset.filter(is_active=False)
        return queryset


@admin.register(InviteCode)
class InviteCodeAdmin(CreatedByStaffMixin, admin.ModelAdmin):
    list_display = ("code", "uses", "expires_at", "is_active", "status", "group", "note", "created_by", "created_at")
    list_filter = (InviteStatusFilter, "is_active", "needs_approval", "group")
    search_fields = ("code", "note")
    readonly_fields = ("use_count", "created_by", "created_at")
    fields = (
        "code",
        "max_uses",
        "use_count",
        "expires_at",
        "is_active",
        "needs_approval",
        "group",
        "note",
        "created_by",
        "created_at",
    )
    actions = ["deactivate", admin_tools.print_invite_slips, exports.export_selected]
    inlines = [admin_tools.InviteUsedByInline]
    formfield_overrides = {models.DateTimeField: {"form_class": expiry.SplitExpiryField}}
    list_select_related = ("group", "created_by")
    change_list_template = "admin/accounts/invitecode/change_list.html"

    @admin.display(description=_("uses / max"), ordering="use_count")
    def uses(self, obj):
        return f"{obj.use_count} / {obj.max_uses if obj.max_uses is not None else '∞'}"

    @admin.display(description=_("status"))
    def status(self, obj):
        problem = obj.problem()
        if problem is None:
            return _("Usable")
        return {"inactive": _("Deactivated"), "expired": _("Expired"), "used_up": _("Used up")}[problem.code]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            record_invites_made([obj], by=request.user)

    @admin.action(description=_("Deactivate selected invite codes"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = queryset.filter(is_active=True).update(is_active=False)
        self.message_user(
            request, ngettext("%(n)d invite code deactivated.", "%(n)d invite codes deactivated.", count) % {"n": count}
        )

    def get_urls(self):
        return (
            [path("generate/", self.admin_site.admin_view(self.generate_view), name="accounts_invitecode_generate")]
            + admin_tools.invite_urls(self)
            + exports.export_urls(self)
            + super().get_urls()
        )

    def generate_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = GenerateInvitesForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            codes = form.save(created_by=request.user)
            self.message_user(
                request,
                ngettext("%(n)d invite code generated.", "%(n)d invite codes generated.", len(codes))
                % {"n": len(codes)},
                messages.SUCCESS,
            )
            ids = ",".join(str(code.pk) for code in codes)
            return redirect(reverse("admin:accounts_invitecode_changelist") + f"?id__in={ids}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": _("Generate invite codes"),
        }
        return render(request, "admin/accounts/invitecode/generate.html", context)


@admin.register(InviteRedemption)
class InviteRedemptionAdmin(admin.ModelAdmin):
    list_display = ("user", "invite", "redeemed_at")
    list_filter = ("redeemed_at",)
    search_fields = ("user__username", "invite__code")
    list_select_related = ("user", "invite")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Django's group admin, plus who is in each group.
admin.site.unregister(Group)
admin.site.register(Group, admin_tools.GroupAdmin)

admin.site.site_header = _("CFPS JupyterHub administration")
admin.site.site_title = _("CFPS JupyterHub")
admin.site.index_title = _("Users, teams and invite codes")
