"""Rate limiting for the POSTs that guess secrets (passwords, invite codes), on top of django-ratelimit.

Rules:
- Only POSTs count; reading a form is free.
- The client is identified by `client_ip()`. Headers are believed only when the direct peer is one of
  TRUSTED_PROXIES (our own proxies on this machine); anyone else could forge them. Then: the right-most
  `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the peer it saw, so that entry
  was written by our own proxy and cannot be forged), else `X-Real-IP` (set by Nginx), else the peer.
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


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if peer not in settings.TRUSTED_PROXIES:
        return peer
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _ip(hop)
        if address and address not in settings.TRUSTED_PROXIES:
            return address
        if hop.strip() and not address:
            break  # garbage in the chain: stop believing it
    return _ip(request.META.get("HTTP_X_REAL_IP", "")) or peer


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
