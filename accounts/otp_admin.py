"""The admin of staff members' second-factor devices (accounts/otp.py): superusers only.

A superuser resets a lost phone by deleting the staff member's authenticator here (账号与邀请 → 身份验证器):
that removes every device of the account, backup codes included, and the next login enrols again. Nobody adds
or edits a device here (each person enrols their own, and a secret is never shown), and no teacher or TA sees
this page, whatever permissions they hold. django-otp's own device pages are taken out of the admin.
"""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import otp
from accounts.models import Authenticator

for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    list_display = ("user", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__first_name", "user__last_name")
    list_select_related = ("user",)
    fields = ("user", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields
    actions = ["reset_devices"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the reset below removes backup codes too
        return actions

    def delete_model(self, request, obj):
        otp.reset(obj.user, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for device in queryset.select_related("user"):
            otp.reset(device.user, actor=request.user, request=request)

    @admin.action(description=_("Reset the second factor (they enrol again at their next login)"))
    def reset_devices(self, request, queryset):
        for device in queryset.select_related("user"):
            removed = otp.reset(device.user, actor=request.user, request=request)
            if removed:
                messages.success(request, otp.reset_message(device.user.get_username(), removed))
