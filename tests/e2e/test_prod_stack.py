"""The production profile, live (issue 11): what a campus deploys, end to end.

tests/e2e/prodstack.py builds it: APP_PROFILE=prod with MariaDB (a throwaway database), Redis (database 11
here), gunicorn's production worker count (one per core, at least 2), the Node proxy, secrets generated for this run,
and Nginx with TLS in front of both origins (prod refuses plain http). It runs the login loop, serves a student's
JupyterLab (a container) on the student's own host under the wildcard certificate, shows that the guessing
limits are counted once for all workers, and still after the portal restarts; and the fresh install's admin enrols
an authenticator at its first login and gives a code at the next (STAFF_OTP is required in prod).
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


def gone(container) -> bool:
    import docker

    try:
        container.reload()
    except docker.errors.NotFound:
        return True
    return False


def remove_server(site, username: str) -> None:
    """Stop the student's container (the hub keeps containers across its own restarts) and drop their home."""
    import docker
    from dockerspawner import DockerSpawner

    escaped = DockerSpawner._escape(username)  # as DockerSpawner names the container and the home volume
    httpx.delete(
        f"{site.stack.hub_api_url}/users/{username}/server",
        headers={"Authorization": f"token {site.stack.hub_admin_token()}"},
        trust_env=False,
        timeout=60,
    )
    client = docker.from_env(timeout=60)
    try:
        # (the hub's delete is removing it meanwhile: one gone between the listing and the look is not an error)
        for container in client.containers.list(all=True, filters={"name": f"jupyter-{escaped}"}, ignore_removed=True):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # 409: the hub's removal is under way; its volume waits for it
                if exc.status_code != 409:
                    raise
                assert flows.wait_until(lambda c=container: gone(c), timeout=60), f"{container.name} is never removed"
        for volume in client.volumes.list(filters={"name": f"jupyterhub-user-{escaped}"}):
            volume.remove(force=True)
    finally:
        client.close()


def test_a_student_gets_their_own_host_under_the_wildcard_certificate_and_logging_out_ends_it(site):
    """Issue 20 in production: the student's JupyterLab at https://<name>.hub.cfps.localhost (Nginx's wildcard
    server name and the run's wildcard certificate, checked by the client), the hub's cookies host-only and
    __Host- on the hub's name; logging out at the portal ends the server's access at once (JupyterHub's session
    id cookie on the hub's domain reaches the student's host)."""
    username = flows.unique_username("sub")
    try:
        with flows.new_client(site) as client:
            flows.signup(site, client, username)
            visited = flows.wait_for_lab(site, client, username, client.get("/jupyter/"))
            own = (
                f"https://{username}.hub.cfps.localhost:{site.hub_base_url.rsplit(':', 1)[1]}/jupyter/user/{username}/"
            )
            assert site.user_url(username) == own and visited[-1].startswith(own + "lab"), visited
            status = client.get(f"/jupyter/user/{username}/api/status", headers={"Accept": "application/json"})
            assert status.status_code == 200 and "started" in status.json(), site.log_tail()
            login = [c for c in client.cookies.jar if c.name.endswith("jupyterhub-hub-login")]
            assert [(c.name, c.domain, c.secure) for c in login] == [
                ("__Host-jupyterhub-hub-login", "hub.cfps.localhost", True)
            ], login
            # The server's own login cookie: __Host- too, on the student's host alone.
            server_login = [(c.domain, c.path, c.secure) for c in client.cookies.jar if c.name.endswith(username)]
            assert server_login == [(f"{username}.hub.cfps.localhost", "/", True)], server_login

            page = client.get("/")
            out = client.post(
                "/accounts/logout/",
                data={"csrfmiddlewaretoken": flows.csrf_token(client, page.text)},
                headers={"Referer": str(page.url)},
            )
            assert flows.logged_in_as(out.text) is None, flows.urls_of(out)
            assert not any("/logout" in url and url.startswith(own) for url in flows.urls_of(out)), (
                "with a hub domain the session id cookie reaches, logout needs no detour by the server"
            )
            again = client.get(f"/jupyter/user/{username}/api/contents", follow_redirects=False)
            assert again.status_code in (302, 403), f"the server still answers after logging out: {again.status_code}"
    finally:
        remove_server(site, username)


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
    expect(page.get_by_role("table", name="教师工具")).to_contain_text("使用情况")

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
    expect(page.get_by_role("table", name="教师工具")).to_contain_text("使用情况")
