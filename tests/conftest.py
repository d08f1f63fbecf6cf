"""Shared fixtures. Tests run against the database DATABASE_URL names: SQLite by default, MariaDB when
./test.sh sets it. Nothing is mocked; in CI a missing service is a failure, never a skip."""

import os

import pytest
from django.core.cache import cache

# One set of browser fixtures for every folder (see tests/browser_plugin.py for why only one).
pytest_plugins = ["tests.browser_plugin"]

PASSWORD = "Cfps-analysis-2026"


# Tests that start their own portal/hub processes, each with its own SQLite (tests/dataset: their own scratch
# databases on MariaDB, whichever database the suite runs on).
LIVE_DIRS = ("e2e", "browser", "docker", "deploy", "dataset", "ops")


def on_mariadb() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("mysql", "mariadb"))


def pytest_report_header(config):
    header = f"portal database: {'MariaDB/MySQL' if on_mariadb() else 'SQLite'}"
    if on_mariadb():
        header += f" (tests/{{{','.join(LIVE_DIRS)}}} run in the SQLite pass: their processes never use this database)"
    return header


def pytest_collection_modifyitems(config, items):
    """The live tests' processes always use their own SQLite, so a MariaDB pass would only repeat them."""
    if not on_mariadb():
        return
    live = [item for item in items if item.path.parent.name in LIVE_DIRS]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if item not in live]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; every test starts with a clean slate."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_invite(db):
    from accounts.models import InviteCode

    def make(**fields):
        return InviteCode.objects.create(**fields)

    return make


@pytest.fixture
def invite(make_invite):
    return make_invite(code="CLASS-2026", max_uses=5)


@pytest.fixture
def signup_data(invite):
    def data(username="student1", **overrides):
        return {
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "invite_code": invite.code,
            **overrides,
        }

    return data


@pytest.fixture
def student(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="student9", password=PASSWORD)


@pytest.fixture
def staff(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser(username="teacher", password=PASSWORD)
