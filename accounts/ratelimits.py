"""Request limits where the risk is volume, not guesses: every request counts (django-ratelimit).

Guesses (a password, an invite code) are limited by their failures in accounts/throttle.py; these limits are for
requests that cost the portal something whether or not they are right: a token exchange (an RSA signature, a
dozen queries), a reset mail, a password hash, an upload, a poll. Each limit is one or more (key, rate) pairs,
the rates table keys (portal/config/table.py, section "requests"):

| what                                        | counted per                          | key                            |
|---------------------------------------------|--------------------------------------|--------------------------------|
| the token endpoint `/o/token/`              | OAuth client; client address         | OAUTH_TOKEN_RATE_LIMIT         |
| the userinfo endpoint `/o/userinfo/`        | access token (address without one)   | OAUTH_USERINFO_RATE_LIMIT      |
| password reset requests (POST)              | e-mail address; account              | PASSWORD_RESET_RATE_LIMIT      |
|                                             | client address                       | PASSWORD_RESET_IP_RATE_LIMIT   |
| set-password posts (a link, a reset mail)   | account; client address              | SET_PASSWORD_(IP_)RATE_LIMIT   |
| admin uploads (roster, course material)     | staff account                        | ADMIN_UPLOAD_RATE_LIMIT        |
| `/api/announcements/`                       | client address                       | ANNOUNCEMENTS_RATE_LIMIT       |
| `/api/server/` (one's own server's state)   | account                              | SERVER_STATE_RATE_LIMIT        |

Rules:
- A class day is never refused: 200 students logging in through the hub within a minute make 200 token
  requests, all from the hub (one client, 127.0.0.1), and one userinfo request each per HUB_AUTH_REFRESH_SECONDS;
  the shipped rates leave at least three times that (tests/accounts/test_ratelimits.py logs a class of 200 in).
- The announcements API is counted per address with no exemption for loopback: the hub polls it from 127.0.0.1
  every 15 s (4 a minute), and a student's server that reaches the portal on loopback (the local spawner, for
  trying the system only) must not get an unlimited endpoint by it. Its rate is fifteen times the hub's need.
- Windows have a fixed length (django-ratelimit's, staggered per key); every request counts, refused or not.
  A refusal is HTTP 429 with Retry-After: the product's 429 page, or JSON for the API endpoints
  (`{"error": "too_many_requests", ...}`), never cached.
- Counts live in the "default" cache, like the guess counts: LocMem in the embedded default (one process, so
  exact), Redis in prod, shared by the workers. A cache that does not answer lets the request through with an
  error in the log (the opposite of the guess limits, which fail closed): refusing here would stop every
  student's hub login and refresh for as long as Redis is away, and these limits guard volume, not secrets.
- The client address is accounts/throttle.py's `client_ip` (forwarding headers only from our own proxies).
- django_ratelimit is used as a library (`core.get_usage`), not an installed app: its system check calls the
  embedded default's in-process cache unshared, which is the point of one process; prod's is Redis.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import JsonResponse
from django.utils.http import urlsafe_base64_decode
from django.utils.translation import gettext as _
from django_ratelimit.core import get_usage

from accounts.throttle import client_ip, too_many_requests

log = logging.getLogger(__name__)


# --- what a request is counted under (None: this limit does not apply to it) ----------------------------------
def client_address(request) -> str:
    return "address:" + client_ip(request)


def oauth_client(request) -> str | None:
    """The client id the request authenticates as: HTTP Basic (what the hub sends), else the POSTed client_id."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    client_id = ""
    if header[:6].lower() == "basic ":
        try:
            client_id = unquote_plus(base64.b64decode(header[6:]).decode().partition(":")[0])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            client_id = ""
    if not client_id:
        client_id = request.POST.get("client_id", "")
    return "client:" + client_id[:200] if client_id else None


def access_token(request) -> str:
    """The bearer token (hashed: the cache never holds it), or the address when there is none."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return "token:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()
    return client_address(request)


def link_account(request) -> str | None:
    """The account a set-password link is for, from the link itself (no query)."""
    match = getattr(request, "resolver_match", None)
    uidb64 = match.kwargs.get("uidb64", "") if match is not None else ""
    try:
        return "account:" + urlsafe_base64_decode(uidb64).decode()[:40] if uidb64 else None
    except (ValueError, UnicodeDecodeError):
        return None


def account(request) -> str | None:
    user = getattr(request, "user", None)
    return f"user:{user.pk}" if user is not None and user.is_authenticated else None


def staff_account(request) -> str | None:
    user = getattr(request, "user", None)
    return f"user:{user.pk}" if user is not None and user.is_authenticated else None


# --- limits ---------------------------------------------------------------------------------------------------
class RequestLimit:
    """`limits`: (key function, name of the setting holding its rate) pairs; a request over any of them is
    refused. `methods`: which requests count (None: all). `api`: refuse with JSON instead of the 429 page."""

    def __init__(self, group: str, limits, *, methods=("POST",), api: bool = False):
        self.group, self.limits, self.methods, self.api = group, list(limits), methods, api

    def refusal(self, request):
        """Count the request; the 429 response when it is over a limit, else None."""
        if self.methods is not None and request.method not in self.methods:
            return None
        wait = 0
        for key, setting in self.limits:
            value = key(request)
            if value is None:
                continue
            try:
                usage = get_usage(
                    request,
                    group=f"{self.group}:{key.__name__}",
                    key=lambda group, request, value=value: value,
                    rate=getattr(settings, setting),
                    increment=True,
                )
            except Exception as exc:  # the cache is away: let it through (module rules)
                log.error("request-limit cache unavailable (%s): let a %s request through", exc, self.group)
                continue
            if usage and usage["should_limit"]:
                wait = max(wait, usage["time_left"], 1)
                if usage["count"] == usage["limit"] + 1:  # once per window, not once per refused request
                    log.warning("request limit %s reached for %s (%s)", self.group, key.__name__, setting)
        if not wait:
            return None
        return self.api_refusal(wait) if self.api else too_many_requests(request, wait)

    def api_refusal(self, wait: int):
        response = JsonResponse(
            {
                "error": "too_many_requests",
                "error_description": _("Too many requests; try again in %(seconds)d seconds.") % {"seconds": wait},
                "retry_after": wait,
            },
            status=429,
        )
        response["Retry-After"] = str(wait)
        response["Cache-Control"] = "no-store"
        return response

    def __call__(self, view):
        """Decorate a view: refused requests never reach it."""

        @functools.wraps(view)
        def limited(request, *args, **kwargs):
            return self.refusal(request) or view(request, *args, **kwargs)

        return limited


OAUTH_TOKEN = RequestLimit(
    "oauth-token",
    [(oauth_client, "OAUTH_TOKEN_RATE_LIMIT"), (client_address, "OAUTH_TOKEN_RATE_LIMIT")],
    api=True,
)
OAUTH_USERINFO = RequestLimit("oauth-userinfo", [(access_token, "OAUTH_USERINFO_RATE_LIMIT")], methods=None, api=True)
SET_PASSWORD = RequestLimit(
    "set-password", [(link_account, "SET_PASSWORD_RATE_LIMIT"), (client_address, "SET_PASSWORD_IP_RATE_LIMIT")]
)
ADMIN_UPLOADS = RequestLimit("admin-upload", [(staff_account, "ADMIN_UPLOAD_RATE_LIMIT")])
# The home page asks every 2 s while a server starts, then every 10 s for a few minutes, then stops (a day's
# class of logins stays far under the rate).
SERVER_STATE = RequestLimit("server-state", [(account, "SERVER_STATE_RATE_LIMIT")], methods=("GET",), api=True)
ANNOUNCEMENTS = RequestLimit(
    "announcements", [(client_address, "ANNOUNCEMENTS_RATE_LIMIT")], methods=("GET", "HEAD"), api=True
)
