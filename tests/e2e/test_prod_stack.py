"""The production profile, live (issue 11): what a campus deploys, end to end.

tests/e2e/prodstack.py builds it: APP_PROFILE=prod with MariaDB (a throwaway database), Redis (database 11
here), gunicorn's production worker count (one per core, at least 2), the Node proxy, secrets generated for this run,
and Nginx with TLS in front of both origins (prod refuses plain http). It runs the login loop and shows that the guessing limits are counted once for all workers, and still
after the portal restarts.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.e2e import flows
from tests.e2e.prodstack import prod_stack
from tests.live import Stack, descendants

REDIS_URL = "redis://127.0.0.1:6379/11"
USER_LIMIT = 10  # LOGIN_USER_FAILURE_LIMIT's default count, per hour here so no window ends mid-test


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    env = {"LOGIN_USER_FAILURE_LIMIT": f"{USER_LIMIT}/h", "HUB_AUTH_REFRESH_SECONDS": "5"}
    with prod_stack(tmp_path_factory.mktemp("prod-stack"), REDIS_URL, env) as site:
        yield site


def worker_pids(stack: Stack) -> list[int]:
    return [pid for pid, _ in descendants(stack.portal.proc.pid)]


def test_the_production_profile_runs_the_login_loop_behind_tls(site):
    assert len(worker_pids(site.stack)) == max(2, os.cpu_count() or 1)
    username = flows.unique_username("prod")
    with flows.new_client(site) as client:
        flows.signup(site, client, username)
        home = flows.hub_login(site, client, username)
        assert str(home.url).startswith(site.hub_base_url + "/jupyter/hub/home"), home.url
        model = flows.hub_user_model(client)
        assert model.status_code == 200 and model.json()["name"] == username, model.text
        session = next(c for c in client.cookies.jar if c.name == "__Host-cfps_session")
        assert session.secure and session.domain == "127.0.0.1", session
        logged_out = client.get("/jupyter/hub/logout")
        assert str(logged_out.url) == site.url("/") and flows.logged_in_as(logged_out.text) is None


def wrong_login(client: httpx.Client, username: str) -> int:
    page = client.get("/accounts/login/")
    return client.post(
        "/accounts/login/",
        data={"csrfmiddlewaretoken": flows.csrf_token(client, page.text), "username": username, "password": "wrong-1"},
        headers={"Referer": str(page.url)},
    ).status_code


def test_guess_counts_are_shared_by_every_worker_and_survive_a_portal_restart(site):
    username = flows.unique_username("target")
    flows.create_user(site.stack, username)
    with flows.new_client(site) as client:
        # Five workers with a count each would let 5 x 10 guesses through; Redis counts them once.
        codes = [wrong_login(client, username) for _ in range(USER_LIMIT)]
        assert codes == [200] * USER_LIMIT, codes
        assert wrong_login(client, username) == 429
    site.stack.portal.stop()
    site.stack.portal.start()
    with flows.new_client(site) as client:
        assert wrong_login(client, username) == 429, "a portal restart forgot the guesses"
