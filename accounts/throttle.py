"""Throttle guesses, not students: limits on the POSTs that guess a secret (passwords, invite codes).

A class of 200 behind one campus NAT address signs up with one code and logs in within minutes, so
successes are never counted; only failed guesses are. On the shipped defaults:

- Sign-up: a correct invite code is bounded only by the code's own `max_uses`. A code that does not exist
  (`unknown`) counts one failure for the client address; at SIGNUP_CODE_FAILURE_LIMIT (20 per 10 minutes)
  that address gets the 429 page for every sign-up POST until the window ends, so codes cannot be
  enumerated. Other form errors (password mismatch, taken name, an expired or used-up code, which exists
  and so tells a guesser nothing new) are not guesses and do not count.
- Login: a wrong password (or unknown name) counts one failure for the username (LOGIN_USER_FAILURE_LIMIT,
  10 per minute) and one for the client address (LOGIN_IP_FAILURE_LIMIT, 100 per 10 minutes). Correct
  logins are not counted at all: 200 students logging in from one address in one minute all get in. The
  portal's login and the Django admin's (/admin/login/, accounts.views.admin_login) are one set of counters:
  there is no login without limits.
- Second factor: a staff member's wrong code (accounts/otp.py) counts in the login counters of the username
  and the address, like a wrong password, and a locked one gets the same 429 before its code is checked.
- Device cookies (OWASP "Slow down online guessing attacks with device cookies"): a successful login gives
  the browser `cfps_device`, signed with Django's signing and bound to the username (a browser holds at
  most DEVICE_COOKIE_USERS of them, for shared lab machines). A login for that username from that browser
  is counted against its own device (LOGIN_DEVICE_FAILURE_LIMIT) instead of the username and the address,
  so someone who knows a student's name cannot keep that student out. A browser without it (a new device)
  is subject to the username's lockout even with the correct password: the password is not even checked
  while the username is locked.
- A limited attempt is refused BEFORE the secret is checked, so a locked-out guesser learns nothing. The
  refusal is HTTP 429 with a page saying when to try again and a matching Retry-After header.
- Windows: each counter's window starts with its first failure and lasts the limit's period (e.g. 10
  minutes); it never depends on where a clock minute falls, so tests cannot flake on a boundary. Checking
  then counting is not one atomic step: concurrent guesses that were all checked before any was counted
  can exceed a limit by at most the number of requests the portal serves at once (workers x threads).
- Counts live in the "default" cache: LocMem in the embedded default (one process, so the counts are exact;
  lost on restart), Redis in prod (shared by every worker, kept across portal restarts).
- Refusals are in the record of who did what (audit/): once per locked window and counter, with the account
  when the refused name is one; the counting above does not change for it.
- Cache outage: a cache that cannot be read or written fails CLOSED for every attempt to check a password
  or an invite code, correct or not (the portal cannot tell a guess from a correct attempt without checking
  the secret, and checking secrets without counting is exactly what the limits forbid): the POST gets HTTP
  503 with a translated "try again in a minute" page and Retry-After, and an ERROR log line; never a 500.
  Nothing else depends on the cache, so nothing else fails: pages load, logged-in students keep their
  portal and hub sessions (the hub's login through an existing portal session posts no secret).
- The client address is `client_ip()`: X-Forwarded-For is believed only when the request carries our own
  proxies' secret header `X-Cfps-Proxy: <PROXY_SECRET>` (JupyterHub's proxy adds it on the portal's route
  only, never to a student's server: hubconfig/pyproxy.py, nodeproxy.mjs; Nginx with proxy_set_header);
  then the client is the RIGHT-MOST entry, the one our proxy wrote (the Node proxy and Nginx append the
  peer they saw, the Python proxy replaces the header with it). Without the header the client is the TCP
  peer and every forwarded header is ignored; X-Real-IP is never read.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.forms.forms import NON_FIELD_ERRORS
from django.shortcuts import render
from django.urls import reverse

from accounts import usernames

logger = logging.getLogger(__name__)

PROXY_HEADER = "HTTP_X_CFPS_PROXY"
DEVICE_COOKIE = "cfps_device"
_DEVICE_SALT = "cfps.accounts.throttle.device"
_KEY_PREFIX = "cfps:throttle"
# What one unavailable-cache refusal asks the browser to wait, in seconds.
OUTAGE_RETRY_SECONDS = 60


# --- the client's address ------------------------------------------------------------------------------
def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def came_through_our_proxy(request) -> bool:
    secret = settings.PROXY_SECRET
    sent = request.META.get(PROXY_HEADER, "")
    return bool(secret and sent) and hmac.compare_digest(sent.encode(), secret.encode())


def client_ip(request) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if not came_through_our_proxy(request):
        return peer
    last_hop = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1]
    return _ip(last_hop) or peer


# --- limits and counters -------------------------------------------------------------------------------
_RATE = re.compile(r"([1-9][0-9]*)/([1-9][0-9]*)?([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Limit:
    failures: int
    seconds: int

    @classmethod
    @functools.lru_cache(maxsize=64)
    def parse(cls, text: str) -> Limit:
        """`10/m`, `100/h`, `20/10m`: that many failures per period (settings check the form at start-up)."""
        match = _RATE.fullmatch(text.replace(" ", ""))
        if not match:
            raise ValueError(f"not a rate like 10/m, 100/h or 20/10m: {text!r}")
        count, multiplier, unit = match.groups()
        return cls(int(count), int(multiplier or 1) * _UNIT_SECONDS[unit])


class CacheUnavailable(Exception):
    """The cache holding the counts did not answer; the attempt is refused (fails closed)."""


def _key(kind: str, identity: str) -> str:
    # Hashed so that any username or address makes a short, safe cache key.
    return f"{_KEY_PREFIX}:{kind}:{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class Counter:
    """Failures of one kind for one identity (a username, an address, a device), in the shared cache."""

    kind: str
    identity: str
    setting: str  # the setting holding the limit, e.g. LOGIN_USER_FAILURE_LIMIT

    @property
    def limit(self) -> Limit:
        return Limit.parse(getattr(settings, self.setting))

    @property
    def key(self) -> str:
        return _key(self.kind, self.identity)

    def seconds_locked(self) -> int:
        """0 when attempts may proceed, else how long the window still runs."""
        limit = self.limit
        try:
            values = cache.get_many([self.key, self.key + ":ends"])
        except Exception as exc:
            raise CacheUnavailable(exc) from exc
        if int(values.get(self.key) or 0) < limit.failures:
            return 0
        ends = values.get(self.key + ":ends") or time.time() + limit.seconds
        return max(math.ceil(ends - time.time()), 1)

    def add_failure(self) -> None:
        limit = self.limit
        try:
            # The first failure opens the window: both keys expire when it ends.
            cache.add(self.key + ":ends", time.time() + limit.seconds, limit.seconds)
            if not cache.add(self.key, 1, limit.seconds):
                try:
                    cache.incr(self.key)
                except ValueError:  # expired between add() and incr(): a new window
                    cache.set(self.key, 1, limit.seconds)
        except Exception as exc:
            raise CacheUnavailable(exc) from exc


class Attempt:
    """One POST that checks a secret against some counters: refuse it early, or count it as a failure."""

    def __init__(self, request, what: str, counters: list[Counter]):
        self.request, self.what, self.counters = request, what, counters

    def refusal(self):
        """The 429 (locked) or 503 (cache down) response, or None when the secret may be checked."""
        if not settings.THROTTLE_ENABLED:
            return None
        try:
            waits = [(counter, counter.seconds_locked()) for counter in self.counters]
        except CacheUnavailable as exc:
            return self.unavailable(exc)
        wait = max((seconds for _, seconds in waits), default=0)
        if not wait:
            return None
        self.record_lockout(next(counter for counter, seconds in waits if seconds), wait)
        return too_many_requests(self.request, wait)

    def record_lockout(self, counter: Counter, wait: int) -> None:
        """Into the record of who did what, once per locked window (not once per refused request, which an
        attacker could repeat at will): what was refused, which limit, and the account when the name is one."""
        from audit.kinds import Kind
        from audit.records import record

        try:
            if not cache.add(counter.key + ":recorded", 1, wait):
                return
            username = _username(self.request) if self.what == "login" else ""
            account = get_user_model().objects.filter(username=username).first() if username else None
        except Exception as exc:  # a cache or database failing now costs the entry, never the answer
            logger.error("could not record a refused %s attempt: %s", self.what, exc)
            return
        record(
            Kind.LOCKED_OUT, subject=account, request=self.request, what=self.what, limit=counter.setting, seconds=wait
        )

    def failed(self):
        """Count a wrong guess; returns the 503 response if it could not be counted, else None."""
        if not settings.THROTTLE_ENABLED:
            return None
        try:
            for counter in self.counters:
                counter.add_failure()
        except CacheUnavailable as exc:
            return self.unavailable(exc)
        return None

    def unavailable(self, exc: CacheUnavailable):
        logger.error(
            "rate-limit cache unavailable (%s): refused a %s attempt from %s",
            exc.__cause__ or exc,
            self.what,
            client_ip(self.request),
        )
        return attempts_unavailable(self.request)


# --- device cookies (OWASP) ----------------------------------------------------------------------------
def _device_entries(request) -> list[list[str]]:
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        entries = signing.loads(raw, salt=_DEVICE_SALT, max_age=settings.DEVICE_COOKIE_DAYS * 86400)
    except signing.BadSignature:
        return []
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, list) and len(entry) == 2]


def trusted_device(request, username: str) -> str | None:
    """The nonce of this browser's valid device cookie for `username`, or None (an untrusted device)."""
    for name, nonce in _device_entries(request):
        if name == username:
            return nonce
    return None


def remember_device(request, response, username: str) -> None:
    """After a successful login: a fresh device cookie for `username`, keeping the browser's others."""
    others = [entry for entry in _device_entries(request) if entry[0] != username]
    entries = [[username, secrets.token_urlsafe(12)], *others][: settings.DEVICE_COOKIE_USERS]
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(entries, salt=_DEVICE_SALT, compress=True),
        max_age=settings.DEVICE_COOKIE_DAYS * 86400,
        path=reverse("login"),  # sent to the login form only
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


# --- the two guarded forms -----------------------------------------------------------------------------
def _username(request) -> str:
    # Folded like the login form does, so "Alice" and "alice" share one budget.
    return usernames.normalize(request.POST.get("username", ""))[:150]


def login_attempt(request) -> Attempt:
    username = _username(request)
    device = trusted_device(request, username)
    if device:
        counters = [Counter("login-device", device, "LOGIN_DEVICE_FAILURE_LIMIT")]
    else:
        counters = [
            Counter("login-user", username, "LOGIN_USER_FAILURE_LIMIT"),
            Counter("login-ip", client_ip(request), "LOGIN_IP_FAILURE_LIMIT"),
        ]
    return Attempt(request, "login", counters)


def second_factor_attempt(request) -> Attempt:
    """A staff member's code for the second factor (accounts/otp.py): a wrong one counts like a wrong password,
    for the username and the address. Never on a device cookie: whoever reaches this step has the password, and
    a device cookie is given at every correct password."""
    username = usernames.normalize(request.user.get_username())[:150]
    counters = [
        Counter("login-user", username, "LOGIN_USER_FAILURE_LIMIT"),
        Counter("login-ip", client_ip(request), "LOGIN_IP_FAILURE_LIMIT"),
    ]
    return Attempt(request, "second-factor", counters)


def is_wrong_password(form) -> bool:
    """Django's AuthenticationForm: a name and password were given and did not match an active user."""
    return form.has_error(NON_FIELD_ERRORS, "invalid_login") or form.has_error(NON_FIELD_ERRORS, "inactive")


class LoginThrottleMixin:
    """For django.contrib.auth's LoginView: refuse locked attempts, count wrong passwords, remember devices."""

    def post(self, request, *args, **kwargs):
        self.attempt = login_attempt(request)
        return self.attempt.refusal() or super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        if is_wrong_password(form) and (refused := self.attempt.failed()):
            return refused
        return super().form_invalid(form)

    def form_valid(self, form):
        response = super().form_valid(form)
        remember_device(self.request, response, form.get_user().get_username())
        return response


def signup_attempt(request) -> Attempt:
    return Attempt(request, "sign-up", [Counter("signup-code", client_ip(request), "SIGNUP_CODE_FAILURE_LIMIT")])


def is_wrong_invite_code(form) -> bool:
    """A code that does not exist; expired, used-up or deactivated ones exist and reveal nothing new."""
    return form.has_error("invite_code", "unknown")


# --- responses -----------------------------------------------------------------------------------------
def too_many_requests(request, seconds: int):
    seconds = max(int(seconds), 1)
    response = render(
        request,
        "429.html",
        {"retry_after_seconds": seconds, "retry_after_minutes": math.ceil(seconds / 60)},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response


def attempts_unavailable(request):
    response = render(request, "503_attempts.html", {"retry_after_seconds": OUTAGE_RETRY_SECONDS}, status=503)
    response["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
    return response
