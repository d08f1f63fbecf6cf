"""Rate limiting for the POSTs that guess secrets (passwords, invite codes), on top of django-ratelimit.

Rules:
- Only POSTs count; reading a form is free.
- The client is identified by `client_ip()`: `X-Real-IP` when the direct peer is one of TRUSTED_PROXIES
  (our own reverse proxy), else the peer address itself. Anyone else could forge the header.
- A limited request gets HTTP 429 with a page saying when to try again and a matching Retry-After header,
  not django-ratelimit's default 403.
"""

import functools
import ipaddress
import math

from django.conf import settings
from django.shortcuts import render
from django_ratelimit.core import get_usage

from accounts import usernames


def client_ip(request) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if peer in settings.TRUSTED_PROXIES:
        forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return peer


def ip_key(group, request):
    return client_ip(request)


def username_key(group, request):
    # Fold like the login form does, so "Alice" and "alice" share one budget.
    return usernames.normalize(request.POST.get("username", ""))[:150]


def limit_posts(group: str, limits):
    """Decorate a view: `limits` is a list of (key function, setting name holding the rate)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method == "POST" and settings.RATELIMIT_ENABLE:
                wait = 0
                for key, rate_setting in limits:
                    usage = get_usage(
                        request,
                        group=f"{group}:{rate_setting}",
                        key=key,
                        rate=getattr(settings, rate_setting),
                        method="POST",
                        increment=True,
                    )
                    if usage and usage["should_limit"]:
                        wait = max(wait, usage["time_left"])
                if wait:
                    return too_many_requests(request, wait)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


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
