"""Sessions on shared PCs, and idle staff sessions.

Rules:
- 这是公共电脑 (a shared computer) on the login form: the session cookie then has no expiry, so the portal
  session ends when the browser closes, and the session ends after SHARED_PC_IDLE_MINUTES without a request
  to the portal.
- Staff sessions (is_staff or is_superuser) end after STAFF_IDLE_MINUTES without a request, box or not; with
  both, the shorter limit. Other sessions last as Django's session cookie does (two weeks).
- Cheap and sliding: the session holds the time of its last request, rewritten at most once a minute
  (TOUCH_SECONDS), so an active session costs one session write a minute, not one per request. A session
  is ended at its first request after the limit (plus up to that minute); it is logged out there and then,
  the page says why, and a form posted after the limit goes to the login page instead of being handled.
- The hub: its own session lives on the hub's host and is refreshed against the portal's userinfo endpoint
  with an OAuth token, not the portal session. So a shared-PC login is also a row (SharedPcLogin) with the
  same last-request time, and when it has idled out, the OAuth provider refuses the tokens of that person and
  revokes them all (accounts/oauth.py), whether the portal noticed the idle session first or the hub did:
  the hub then asks for a login at its next auth refresh (HUB_AUTH_REFRESH_SECONDS), which goes to the
  portal's login form. All of the person's tokens, because the hub keeps one set per person, not per
  browser; their hub sessions elsewhere log in again through their own portal session (one redirect).
  Work in JupyterLab is not a request to the portal: a student who only works there is asked for the
  password again by the hub's pages after the idle time (JupyterLab itself keeps running).
- Logging out, on the portal or the hub, still ends both sessions at once (accounts/views.py LogoutView,
  hubconfig/authenticator.py); it also ends the shared-PC row.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import events

SEEN_KEY = "cfps_seen"  # epoch seconds of the session's last request, rewritten at most every TOUCH_SECONDS
SHARED_KEY = "cfps_shared_pc"  # the SharedPcLogin's id, for a login with the box ticked
TOUCH_SECONDS = 60


def started(request, shared_pc: bool) -> None:
    """Right after a login through the login form (accounts/views.py)."""
    request.session[SEEN_KEY] = int(time.time())
    if not shared_pc:
        return
    from accounts.models import SharedPcLogin

    user = request.user
    SharedPcLogin.objects.filter(user=user, ended_at__isnull=False).delete()  # keep the table small
    login = SharedPcLogin.objects.create(user=user)
    request.session[SHARED_KEY] = login.pk
    request.session.set_expiry(0)  # a cookie without expiry: gone when the browser closes


def idle_limit(request) -> int | None:
    """Seconds this session may stay idle, or None for no limit."""
    limits = []
    if request.session.get(SHARED_KEY):
        limits.append(settings.SHARED_PC_IDLE_SECONDS)
    user = request.user
    if user.is_staff or user.is_superuser:
        limits.append(settings.STAFF_IDLE_SECONDS)
    return min(limits) if limits else None


class IdleSessionMiddleware:
    """Ends sessions idle past their limit; keeps the last-request time (module rules). After
    AuthenticationMiddleware and MessageMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        if SESSION_KEY in session and (limit := idle_limit(request)):
            now = int(time.time())
            seen = session.get(SEEN_KEY)
            if seen is not None and now - seen > limit + TOUCH_SECONDS:
                return self.idled_out(request)
            if seen is None or now - seen >= TOUCH_SECONDS:
                session[SEEN_KEY] = now
                if login_id := session.get(SHARED_KEY):
                    _shared_logins().filter(pk=login_id, ended_at__isnull=True).update(last_seen=timezone.now())
        return self.get_response(request)

    def idled_out(self, request):
        user, shared = request.user, bool(request.session.get(SHARED_KEY))
        login_id = request.session.get(SHARED_KEY)
        if login_id:
            end_shared_login(user, _shared_logins().filter(pk=login_id))
        logout(request)
        events.session_idled_out.send(sender=__name__, user=user, request=request, shared_pc=shared)
        messages.info(request, _("You were logged out because you did nothing for a while. Please log in again."))
        if request.method == "GET":
            return self.get_response(request)  # the page as anyone else sees it (the login form, say)
        return redirect(reverse("login") + "?" + urlencode({"next": request.path}))


def _shared_logins():
    from accounts.models import SharedPcLogin

    return SharedPcLogin.objects


def end_shared_login(user, rows) -> bool:
    """End `rows` (SharedPcLogin, of `user`) that have not ended; if any did, revoke all the user's tokens."""
    from accounts.oauth import revoke_all_tokens

    with transaction.atomic():
        if not rows.filter(ended_at__isnull=True).update(ended_at=timezone.now()):
            return False
        revoke_all_tokens(user)
    return True


def shared_login_idled_out(user) -> bool:
    """For the OAuth provider: whether a shared-PC login of `user` has idled out (it is ended here then, with
    every token of the user revoked, and the caller refuses the token it is checking)."""
    if user is None or not getattr(user, "pk", None):
        return False
    limit = settings.SHARED_PC_IDLE_SECONDS + TOUCH_SECONDS
    stale = _shared_logins().filter(
        user=user, ended_at__isnull=True, last_seen__lt=timezone.now() - timedelta(seconds=limit)
    )
    if not stale.exists():
        return False
    if end_shared_login(user, stale):
        events.session_idled_out.send(sender=__name__, user=user, request=None, shared_pc=True)
    return True


@receiver(user_logged_out)
def _end_on_logout(sender, request, user, **kwargs):
    login_id = request.session.get(SHARED_KEY) if request is not None else None
    if login_id and user is not None:
        _shared_logins().filter(pk=login_id, user=user, ended_at__isnull=True).update(ended_at=timezone.now())
