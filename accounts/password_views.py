"""The password pages, on Django's views with the forms of accounts.password_forms.

- Behind a set-password link (see accounts.setpassword): the student picks a password and is logged in on
  the portal's home page, from which "Open JupyterLab" works. Django's PasswordResetConfirmView does the
  work: it moves the token out of the URL into the session before showing the form (so it never leaks
  through a Referer header), checks it, and logs the user in after.
- The password change: right after a login with a temporary password, in that session only, it does not ask
  for the temporary password again (accounts.setpassword.logged_in_with_temporary_password).
"""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts import password_forms, setpassword
from accounts.setpassword import token_generator


@method_decorator(never_cache, name="dispatch")
class SetPasswordView(auth_views.PasswordResetConfirmView):
    template_name = "registration/set_password.html"
    form_class = password_forms.SetPasswordForm
    token_generator = token_generator
    reset_url_token = "choose"
    post_reset_login = True
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # A deactivated (or not yet approved) account keeps its link but cannot use it.
        return user if user is not None and user.is_active else None

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password is set. Use it with your username to log in next time."))
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The e-mailed reset link's page (accounts.password_reset sends it)."""

    form_class = password_forms.SetPasswordForm


class PasswordChangeView(auth_views.PasswordChangeView):
    def get_form_class(self):
        if setpassword.logged_in_with_temporary_password(self.request):
            return password_forms.SetPasswordForm
        return password_forms.PasswordChangeForm
