"""Keep a user who logged in with a staff-given temporary password on the password-change page.

Rule: while `user.must_change_password` is set, every page except changing the password, logging out,
switching the language and static files answers with a redirect to the password-change page. The flag is
cleared by `User.set_password()`, i.e. by any password the user chooses. Until then no OAuth authorization
is answered and no token issued for the user (accounts.oauth), however the request reaches the provider.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

# The second factor's pages too: a staff member with a temporary password gives the code first (accounts/otp.py).
ALLOWED_URL_NAMES = (
    "password_change",
    "password_change_done",
    "logout",
    "set_language",
    "otp_verify",
    "otp_setup",
    "otp_backup_codes",
)


def must_change_password(request) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated and getattr(user, "must_change_password", False)


def password_change_required(request):
    """The redirect to the password-change page when `request.user` must first replace a temporary
    password, else None. Also called by the OAuth authorize endpoint itself (accounts.oauth), which a login
    can run inside its own response, past this middleware."""
    if not must_change_password(request):
        return None
    messages.warning(request, _("You logged in with a temporary password. Choose your own password now."))
    return redirect("password_change")


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if must_change_password(request):
            allowed = {reverse(name) for name in ALLOWED_URL_NAMES}
            if request.path not in allowed and not request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
                return password_change_required(request)
        return self.get_response(request)
