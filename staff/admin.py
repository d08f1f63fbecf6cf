"""Staff admin: announcements (write, expire) and the read-only log of e-mails that could not be sent."""

from django.contrib import admin
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.expiry import SplitExpiryField
from portal.admin_site import CreatedByStaffMixin
from staff.models import Announcement, MailFailure


@admin.register(Announcement)
class AnnouncementAdmin(CreatedByStaffMixin, admin.ModelAdmin):
    list_display = ("message", "level", "is_active", "expires_at", "showing", "created_by", "created_at")
    list_filter = ("is_active", "level")
    fields = ("message", "level", "expires_at", "is_active")
    search_fields = ("message",)
    formfield_overrides = {models.DateTimeField: {"form_class": SplitExpiryField}}  # a date alone: its end

    @admin.display(description=_("showing now"), boolean=True)
    def showing(self, obj):
        return obj.is_current


@admin.register(MailFailure)
class MailFailureAdmin(admin.ModelAdmin):
    list_display = ("created_at", "purpose", "recipient", "user", "error")
    list_filter = ("purpose", "created_at")
    search_fields = ("recipient", "user__username", "error")
    readonly_fields = ("created_at", "purpose", "recipient", "subject", "user", "error")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
