"""Fixtures for the record's tests: entries by kind, a logged-in superuser, the mail server and the course's homes
and worker of the other folders' tests (the record is written by all of them)."""

from __future__ import annotations

import pytest

from audit.models import Event
from tests.accounts.test_password_reset import Inbox, _smtp
from tests.course.conftest import course_var, homes, make_home, run_worker  # noqa: F401 (fixtures)


def entries(kind=None, **filters) -> list[Event]:
    queryset = Event.objects.order_by("pk")
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    return list(queryset.filter(**filters))


def only(kind, **filters) -> Event:
    found = entries(kind, **filters)
    assert len(found) == 1, f"{kind}: expected one entry, found {[(e.kind, e.subject_name, e.detail) for e in found]}"
    return found[0]


@pytest.fixture
def superuser_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def inbox(settings):
    """A real SMTP server on loopback (tests/accounts/test_password_reset.py's)."""
    inbox = Inbox()
    controller = _smtp(settings, inbox)
    yield inbox
    controller.stop()
