"""Writing the record: `record()` for one entry, `record_many()` for the same thing done to many accounts.

Rules:
- Writing an entry never makes the action fail: any error (a database that refuses, a detail that cannot be
  stored) is logged and swallowed. Inside the action's transaction the INSERT runs in a savepoint, so a failed
  one leaves that transaction usable; outside one it is a single INSERT in autocommit (a login's case).
- Cost: one INSERT (`record_many`: one INSERT for all its rows), nothing read first; measured in tests/audit.
- Who: `actor` when given, else the logged-in user of the request; the request is the one given, else the one
  being served (`RequestContextMiddleware` keeps it for signals that have none). Without a request (a
  `manage.py` command, the course worker) the actor is nobody and `detail["via"]` names the command.
- From where: the client address as accounts/throttle.py's `client_ip` computes it (forwarding headers only
  from our own proxies), and the browser's User-Agent, cut to 200 characters. `via` is the view's name, never a
  path or a query string (a set-password path holds its token).
- Never a password, a token, a code or a one-time link: callers pass counts, ids, names and flags, and any
  detail whose name looks like a secret's (password, token, secret, code, link, key, otp, session, cookie) is
  left out with an error in the log.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import re
import sys

from django.db import connections, router, transaction
from django.db.models import Model

from audit.models import DEVICE_LENGTH, Event

log = logging.getLogger(__name__)

_REQUEST: contextvars.ContextVar = contextvars.ContextVar("cfps_audit_request", default=None)
_SECRET_NAME = re.compile(r"pass|secret|token|code|link|key|otp|session|cookie", re.IGNORECASE)


# --- the request being served ------------------------------------------------------------------------------
def current_request():
    return _REQUEST.get()


@contextlib.contextmanager
def serving(request):
    """Within this block, `record()` without a request takes this one (RequestContextMiddleware)."""
    token = _REQUEST.set(request)
    try:
        yield
    finally:
        _REQUEST.reset(token)


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None) if request is not None else None
    return (match.view_name or "") if match is not None else ""


# --- writing -----------------------------------------------------------------------------------------------
def record(kind, actor=None, subject=None, request=None, **detail) -> Event | None:
    """Record that `actor` did `kind` to `subject` (an account, or the name of one that is gone); returns the
    entry, or None when it could not be written (logged). Never raises."""
    try:
        event = _event(kind, actor, subject, request, detail)
        _write([event])
        return event
    except Exception as exc:  # the record must never cost the action
        log.error("could not record %s: %s", kind, exc, exc_info=True)
        return None


def record_many(kind, subjects, actor=None, request=None, **detail) -> int:
    """One entry per subject, written in one INSERT; returns how many (0 when they could not be written)."""
    try:
        events = [_event(kind, actor, subject, request, detail) for subject in subjects]
        if events:
            _write(events)
        return len(events)
    except Exception as exc:
        log.error("could not record %s: %s", kind, exc, exc_info=True)
        return 0


def _write(events: list[Event]) -> None:
    using = router.db_for_write(Event)
    if connections[using].in_atomic_block:
        with transaction.atomic(using=using):  # a savepoint: a failed INSERT leaves the action's transaction usable
            _insert(events, using)
    else:
        _insert(events, using)


def _insert(events, using) -> None:
    if len(events) == 1:
        events[0].save(force_insert=True, using=using)
    else:
        Event.objects.using(using).bulk_create(events)


def _event(kind, actor, subject, request, detail) -> Event:
    request = request if request is not None else current_request()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    actor, actor_name = _account(actor)
    subject, subject_name = _account(subject)
    clean = _clean(detail)
    clean.setdefault("via", _via(request))
    if not clean["via"]:
        del clean["via"]
    return Event(
        kind=str(kind),
        actor=actor,
        actor_name=actor_name,
        subject=subject,
        subject_name=subject_name,
        address=_address(request),
        device=_device(request),
        detail=clean,
    )


def _account(value) -> tuple[Model | None, str]:
    """(the account to point at, or None; the name to keep) for a user, a name, or nothing."""
    if value is None:
        return None, ""
    if isinstance(value, str):
        return None, value[:150]
    name = value.get_username()[:150]
    return (value if value.pk is not None else None), name


def _address(request) -> str | None:
    if request is None:
        return None
    from accounts.throttle import client_ip  # (accounts imports this module)

    try:
        return str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        return None


def _device(request) -> str:
    if request is None:
        return ""
    agent = request.META.get("HTTP_USER_AGENT", "")
    return "".join(c for c in agent if c.isprintable())[:DEVICE_LENGTH]


def _via(request) -> str:
    if request is not None:
        return view_name(request)
    argv = sys.argv
    if len(argv) > 1 and argv[0].endswith(("manage.py", "django-admin")):
        return f"manage.py {argv[1]}"[:100]
    return ""


def _clean(detail: dict) -> dict:
    clean = {}
    for name, value in detail.items():
        if _SECRET_NAME.search(name):
            log.error("left the detail %r out of the record: its name says it may be a secret", name)
            continue
        if value is None:
            continue
        clean[name] = _plain(value)
    return clean


def _plain(value):
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Model):
        return str(value)
    return value
