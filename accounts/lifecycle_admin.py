"""Admin pages for the account lifecycle: retired usernames and calls to the hub still waiting for it (removals,
hub users made before their first login, servers to start).

Both are read-only: a retired name must never come back (the old owner's files are kept under it), and a
pending call is the portal's own bookkeeping (`manage.py retry_hub_removals` carries it out now), shown to
superusers only: nothing a teacher can act on.
"""

from django.contrib import admin

from accounts.models import PendingHubCall, RetiredUsername


class SuperuserOnly:
    """ModelAdmin mixin: only a superuser sees the model in the admin or reaches its pages (anyone else gets
    a 403, whatever permissions they hold; a role's "app.*" patterns may well grant them)."""

    def has_module_permission(self, request):
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


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


@admin.register(PendingHubCall)
class PendingHubCallAdmin(SuperuserOnly, ReadOnlyAdmin):
    list_display = ("username", "reason", "requested_at", "attempts", "last_attempt_at", "last_error")
    search_fields = ("username",)


class DeletesAccountsWithTheirTokens:
    """UserAdmin mixin: deleting an account deletes its OAuth tokens with it (their foreign keys cascade).

    django-oauth-toolkit's admin forbids deleting token rows by hand (staff revoke them instead), so Django
    would refuse to delete any account that ever logged in to the hub ("no permission to delete: access
    token, refresh token"). Tokens that go with their owner are no reason to refuse.
    """

    def get_deleted_objects(self, objs, request):
        from oauth2_provider.models import (
            get_access_token_model,
            get_grant_model,
            get_id_token_model,
            get_refresh_token_model,
        )

        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        models = (get_access_token_model(), get_refresh_token_model(), get_grant_model(), get_id_token_model())
        cascaded = {str(model._meta.verbose_name) for model in models}
        return deleted, counts, {p for p in perms_needed if str(p) not in cascaded}, protected
