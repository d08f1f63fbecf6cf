"""The production profile, live (issue 11): what a campus deploys, end to end.

tests/e2e/prodstack.py builds it: APP_PROFILE=prod with MariaDB (a throwaway database), Redis (database 11
here), gunicorn's production worker count (one per core, at least 2), the Node proxy, secrets generated for this run,
and Nginx with TLS in front of both origins (prod refuses plain http). It runs the login loop and shows that the guessing limits are counted once for all workers, and still
after the portal restarts; and the fresh install's admin enrols an authenticator at its first login and gives a
code at the next (STAFF_OTP is required in prod).
"""

from __future__ import annotations

import os
import secrets
import time
from base64 import b32decode

import httpx
import pytest

from tests.e2e import flows
from tests.e2e.prodstack import prod_stack
from tests.live import Stack, descendants

REDIS_URL = "redis://127.0.0.1:6379/11"
ADMIN_PASSWORD = "Prod-admin-2026-" + secrets.token_hex(4)
USER_LIMIT = 10  # LOGIN_USER_FAILURE_LIMIT's default count, per hour here so no window ends mid-test


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    env = {
        "LOGIN_USER_FAILURE_LIMIT": f"{USER_LIMIT}/h",
        "HUB_AUTH_REFRESH_SECONDS": "5",
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
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


def _code(secret: str, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for the key on the enrolment page."""
    from django_otp.oath import TOTP

    key = secret.replace(" ", "")
    totp = TOTP(b32decode(key + "=" * (-len(key) % 8)), step=30, t0=0, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_fresh_install_asks_its_admin_to_enrol_an_authenticator_then_for_a_code_at_every_login(
    site, new_context, screenshot
):
    """STAFF_OTP is prod's only value: `bootstrap`'s admin, as a new teacher on a fresh clone would use it."""
    from playwright.sync_api import expect

    page = new_context(ignore_https_errors=True).new_page()
    page.goto(site.url("/admin/"))
    page.locator("#id_username").fill("cfps-admin")
    page.locator("#id_password").fill(ADMIN_PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_role("heading", name="设置两步验证")).to_be_visible()
    expect(page.get_by_test_id("otp-qr").locator("svg")).to_be_visible()
    screenshot(page, "01-enrol")
    secret = page.get_by_test_id("otp-secret").inner_text()
    page.get_by_label("验证码").fill(_code(secret))
    page.get_by_role("button", name="确认").click()
    expect(page.get_by_test_id("backup-codes").locator("li")).to_have_count(10)
    page.get_by_role("link", name="已保存，继续").click()
    expect(page.locator("#staff-tools")).to_contain_text("使用情况")

    # Logging out goes through the hub's logout and back; the next login asks for the code.
    page.goto(site.url("/"))
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(site.url("/"))
    page.goto(site.url("/admin/"))
    page.locator("#id_username").fill("cfps-admin")
    page.locator("#id_password").fill(ADMIN_PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_role("heading", name="两步验证")).to_be_visible()
    screenshot(page, "02-code")
    page.get_by_label("验证码").fill(_code(secret, 1))
    page.get_by_role("button", name="验证").click()
    expect(page.locator("#staff-tools")).to_contain_text("使用情况")
