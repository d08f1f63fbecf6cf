"""Approval of accounts made with an invite code that needs it (InviteCode.needs_approval).

Rules:
- Such an account is created inactive with `awaiting_approval` set (accounts.forms.SignupForm.save), so every
  existing "inactive" gate keeps it out: portal login, OAuth authorize and tokens, the hub.
- Approving turns both flags around, one save() per user so that per-user signals run.
- The admin's "waiting for approval" filter lists exactly the accounts approval would let in.
"""

from django.contrib import admin
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext


def waiting(queryset):
    return queryset.filter(awaiting_approval=True, is_active=False)


@transaction.atomic
def approve(queryset) -> int:
    count = 0
    for user in waiting(queryset).select_for_update():
        user.is_active = True
        user.awaiting_approval = False
        user.save(update_fields=["is_active", "awaiting_approval"])
        count += 1
    return count


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = _("approval")
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("waiting", _("Waiting for approval"))]

    def queryset(self, request, queryset):
        return waiting(queryset) if self.value() == "waiting" else queryset


@admin.action(description=_("Approve selected users"), permissions=["change"])
def approve_users(modeladmin, request, queryset):
    count = approve(queryset)
    modeladmin.message_user(request, ngettext("%(n)d user approved.", "%(n)d users approved.", count) % {"n": count})
