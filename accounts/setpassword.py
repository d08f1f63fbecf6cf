"""Passwords that staff hand out on paper: one-time set-password links and temporary passwords.

Rules:
- A set-password link is valid for `LINK_DAYS` days and only once: its token is an HMAC over the user's
  password hash and last login (Django's PasswordResetTokenGenerator), so setting a password or logging in
  ends it. It has its own salt and its own lifetime, independent of the e-mail reset's
  `PASSWORD_RESET_TIMEOUT`, so a reset link can never be replayed as a 7-day link or the other way round.
- Links and temporary passwords are only for active accounts, and for staff accounts (staff, superusers,
  members of a staff role: `accounts.roles`) only when a superuser asks: a staff member with "change user"
  rights must not be able to take over another staff member's or an administrator's account.
- A temporary password sets `must_change_password`; `accounts.middleware` keeps the user on the
  password-change page until they choose their own. That page does not ask for the temporary password
  again, but only in the browser session that has just logged in with it (`logged_in_with_temporary_password`:
  the session is marked at that login, bound to the password hash then); anywhere else, e.g. a session
  already open when a superuser ticked "must change password", the old password is asked as usual.
- Every link made is in the record of who did what (`record_links_issued`: whose, by whom, until when; never
  the link), and so is every temporary password set (audit/receivers.py; never the password).
"""

import datetime
import secrets

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode

from accounts import roles
from audit.kinds import Kind
from audit.records import record_many

LINK_DAYS = 7
# Read from paper: no 0/O, 1/I/l.
TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
TEMPORARY_LENGTH = 10
TEMPORARY_LOGIN_SESSION_KEY = "cfps_temporary_password_login"


class SetPasswordTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "accounts.setpassword.SetPasswordTokenGenerator"
    timeout = LINK_DAYS * 24 * 3600

    def check_token(self, user, token):
        # Django's own check compares the age with settings.PASSWORD_RESET_TIMEOUT (the e-mail reset's
        # lifetime); these links have their own, so the check is repeated here with `timeout`.
        if not (user and token):
            return False
        try:
            ts = base36_to_int(token.split("-", 1)[0])
        except ValueError:
            return False
        if not any(
            constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        ):
            return False
        return 0 <= self._num_seconds(self._now()) - ts <= self.timeout


token_generator = SetPasswordTokenGenerator()


def may_issue(staff_user, user) -> bool:
    """Whether `staff_user` may give `user` a link or a temporary password (see the module rules)."""
    return user.is_active and roles.may_manage(staff_user, user)


def link_path(user) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("set_password", kwargs={"uidb64": uidb64, "token": token_generator.make_token(user)})


def link(user) -> str:
    """The absolute link printed on the student's slip (the portal's public address, not the request's)."""
    return settings.PUBLIC_URL + link_path(user)


def link_expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=LINK_DAYS)


def record_links_issued(users, request=None, by=None) -> None:
    record_many(Kind.SET_PASSWORD_LINK_ISSUED, users, actor=by, request=request, valid_until=link_expiry())


def temporary_password() -> str:
    return "".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(TEMPORARY_LENGTH))


def set_temporary_password(user) -> str:
    """Give `user` a fresh temporary password (saved, signals fire) and return it for the slip."""
    raw = temporary_password()
    user.set_temporary_password(raw)
    user.save(update_fields=["password", "must_change_password"])
    return raw


@receiver(user_logged_in)
def _mark_a_login_with_a_temporary_password(sender, request, user, **kwargs):
    if getattr(user, "must_change_password", False) and hasattr(request, "session"):
        request.session[TEMPORARY_LOGIN_SESSION_KEY] = user.get_session_auth_hash()


def logged_in_with_temporary_password(request) -> bool:
    """Whether this session logged in with the user's current password while it had to be changed."""
    user = request.user
    if not (user.is_authenticated and getattr(user, "must_change_password", False)):
        return False
    marker = request.session.get(TEMPORARY_LOGIN_SESSION_KEY, "")
    return bool(marker) and constant_time_compare(marker, user.get_session_auth_hash())
