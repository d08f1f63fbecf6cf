"""Django's password forms, with the password rules' errors where the user typed the password.

Django puts what its validators say ("too short", "too common", "too similar to the username") under the
confirmation field, because it checks the second copy; a student looks for them under the first, the one
they chose. Here the first field is checked and carries them; "the two passwords did not match" stays under
the confirmation. Used by sign-up, the set-password link, the e-mail reset, the password change and the
admin's forms.
"""

from django.contrib.auth import forms as auth_forms

_FIRST = {"password2": "password1", "new_password2": "new_password1"}


class ErrorsUnderFirstPassword:
    """Mixin for a form built on Django's SetPasswordMixin."""

    def validate_password_for_user(self, user, password_field_name="password2", **kwargs):
        return super().validate_password_for_user(
            user, password_field_name=_FIRST.get(password_field_name, password_field_name), **kwargs
        )


class SetPasswordForm(ErrorsUnderFirstPassword, auth_forms.SetPasswordForm):
    pass


class PasswordChangeForm(ErrorsUnderFirstPassword, auth_forms.PasswordChangeForm):
    pass


class AdminPasswordChangeForm(ErrorsUnderFirstPassword, auth_forms.AdminPasswordChangeForm):
    pass
