"""End-to-end fixtures: the whole system (tests/live.py `Stack`: gunicorn, JupyterHub, its proxy, the idle
culler) as real processes on free loopback ports, once per proxy implementation.

A stack takes ~10 s to start, so one is shared by every test of the session for each proxy (pytest groups
the tests by the `stack` parameter, so only one stack runs at a time); every test makes its own users
(`flows.unique_username`), so tests never see each other's accounts, servers or sessions.

Without the node proxy (node_modules/.bin/configurable-http-proxy, from `npm ci`) the `node` half is
skipped, or FAILS when CI=true.
"""

from __future__ import annotations

import logging

import pytest

from tests.e2e import flows
from tests.live import REPO, Stack

# One INFO line per request would bury a failure's own message.
logging.getLogger("httpx").setLevel(logging.WARNING)

NODE_PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"

# Small enough that a deactivated user is locked out within a test's patience, large enough that the hub is
# not asking the portal on every single request.
AUTH_REFRESH_SECONDS = 5

STACK_ENV = {
    # `bootstrap` creates this invite code (unlimited uses) for the sign-up form.
    "INVITE_CODES": flows.INVITE_CODE,
    "HUB_AUTH_REFRESH_SECONDS": str(AUTH_REFRESH_SECONDS),
}


def require_node_proxy() -> None:
    if NODE_PROXY.exists():
        return
    message = f"PROXY=node needs {NODE_PROXY}: run `npm ci` in {REPO}"
    pytest.skip(message)


@pytest.fixture(scope="session", params=["python", "node"])
def stack(request, tmp_path_factory):
    proxy = request.param
    if proxy == "node":
        require_node_proxy()
    with Stack(tmp_path_factory.mktemp(f"stack-{proxy}"), proxy=proxy, extra_env=STACK_ENV) as running:
        yield running


@pytest.fixture
def client(stack):
    """A fresh httpx 'browser' (own cookie jar) on the stack's public origin; closed after the test."""
    client = flows.new_client(stack)
    yield client
    client.close()


@pytest.fixture
def student(stack, client):
    """A new account signed up through the portal form; `client` is logged in to the portal as it."""
    username = flows.unique_username("stu")
    flows.signup(stack, client, username)
    return username
