"""Keep a user who logged in with a staff-given temporary password on the password-change page.

Rule: while `user.must_change_password` is set, every page except changing the password, logging out,
switching the language and static files answers with a redirect to the password-change page. The flag is
cleared by `User.set_password()`, i.e. by any password the user chooses.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

ALLOWED_URL_NAMES = ("password_change", "password_change_done", "logout", "set_language")


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "must_change_password", False):
            allowed = {reverse(name) for name in ALLOWED_URL_NAMES}
            if request.path not in allowed and not request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
                messages.warning(request, _("You logged in with a temporary password. Choose your own password now."))
                return redirect("password_change")
        return self.get_response(request)
