"""Admin pages for the account lifecycle: retired usernames and hub removals still waiting for the hub.

Both are read-only: a retired name must never come back (the old owner's files are kept under it), and a
pending removal is the portal's own bookkeeping (`manage.py retry_hub_removals` carries it out now).
"""

from django.contrib import admin

from accounts.models import PendingHubRemoval, RetiredUsername


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetiredUsername)
class RetiredUsernameAdmin(ReadOnlyAdmin):
    list_display = ("username", "reason", "retired_at")
    list_filter = ("reason",)
    search_fields = ("username",)


@admin.register(PendingHubRemoval)
class PendingHubRemovalAdmin(ReadOnlyAdmin):
    list_display = ("username", "reason", "requested_at", "attempts", "last_attempt_at", "last_error")
    search_fields = ("username",)
