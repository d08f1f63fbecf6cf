"""The production profile, live (issue 11): what a campus deploys, end to end.

APP_PROFILE=prod with MariaDB (a throwaway database on the machine's server), Redis (the machine's server, a
database number of its own), gunicorn's production worker count (2 x cores + 1), the Node proxy, the Docker
spawner's configuration, secrets generated for this run, and Nginx with TLS in front of both origins
(https://127.0.0.1:<port> for the portal, https://localhost:<port> for the hub; prod refuses plain http).
It runs the login loop and shows that the guessing limits are counted once for all workers, and still
after the portal restarts.
"""

from __future__ import annotations

import os
import secrets
import ssl

import httpx
import pytest

from tests.deploy.conftest import BehindNginx, Nginx, self_signed_certificate
from tests.e2e import flows
from tests.e2e.conftest import require_node_proxy
from tests.live import Stack, descendants, free_port, in_ci

REDIS_URL = "redis://127.0.0.1:6379/11"
USER_LIMIT = 10  # LOGIN_USER_FAILURE_LIMIT's default count, per hour here so no window ends mid-test


def mariadb_root():
    import MySQLdb

    try:
        return MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5)
    except MySQLdb.Error as exc:
        message = f"MariaDB on 127.0.0.1:3306 (root, no password) is needed for the prod stack: {exc}"
        if in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)


def require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        message = f"Redis on 127.0.0.1:6379 is needed for the prod stack: {exc}"
        if in_ci():
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    require_node_proxy()
    require_redis()
    database = f"cfps_prod_live_{secrets.token_hex(4)}"
    root = mariadb_root()
    root.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    tmp = tmp_path_factory.mktemp("prod-stack")
    http_port, https_port = free_port(), free_port()
    cert, key = self_signed_certificate(tmp / "tls", "127.0.0.1", "localhost")
    from portal.config.keys import new_rsa_private_key_pem

    (tmp / "oidc.pem").write_text(new_rsa_private_key_pem())
    env = {
        "APP_PROFILE": "prod",
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "REDIS_URL": REDIS_URL,
        "PUBLIC_URL": f"https://127.0.0.1:{https_port}",
        "HUB_PUBLIC_URL": f"https://localhost:{https_port}",
        "APP_DOMAIN_NAME": "127.0.0.1",
        "HUB_DOMAIN_NAME": "localhost",
        "SPAWNER": "docker",
        "DOCKER_NETWORK": "host",
        "OIDC_RSA_PRIVATE_KEY_FILE": str(tmp / "oidc.pem"),
        "INVITE_CODES": flows.INVITE_CODE,
        "LOGIN_USER_FAILURE_LIMIT": f"{USER_LIMIT}/h",
        "HUB_AUTH_REFRESH_SECONDS": "5",
        **{key: secrets.token_urlsafe(48) for key in ("HUB_CLIENT_SECRET", "HUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN")},
        "PROXY_SECRET": secrets.token_urlsafe(48),
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    }
    try:
        with Stack(tmp / "stack", proxy="node", extra_env=env, workers=None) as stack:
            site = tmp / "nginx" / "cfps.conf"
            site.parent.mkdir()
            stack.manage(
                "gen_nginx", "--tls", "--listen", "127.0.0.1", "--http-port", str(http_port),
                "--https-port", str(https_port), "--certificate", str(cert), "--certificate-key", str(key),
                "--cache-dir", str(tmp / "nginx" / "cache"), "--acme-webroot", str(tmp / "acme"),
                "--output", str(site),
            )  # fmt: skip
            nginx = Nginx(site, tmp / "nginx", [http_port, https_port]).start()
            try:
                yield BehindNginx(stack, nginx, https_port, scheme="https"), cert
            finally:
                nginx.stop()
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        root.close()


def browser(site, cert) -> httpx.Client:
    return flows.StackClient(
        site,
        verify=ssl.create_default_context(cafile=str(cert)),
        trust_env=False,
        follow_redirects=True,
        timeout=60,
        headers={"Accept-Language": "en"},
    )


def worker_pids(stack: Stack) -> list[int]:
    return [pid for pid, _ in descendants(stack.portal.proc.pid)]


def test_the_production_profile_runs_the_login_loop_behind_tls(prod):
    site, cert = prod
    assert len(worker_pids(site.stack)) == 2 * (os.cpu_count() or 1) + 1
    username = flows.unique_username("prod")
    with browser(site, cert) as client:
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


def test_guess_counts_are_shared_by_every_worker_and_survive_a_portal_restart(prod):
    site, cert = prod
    username = flows.unique_username("target")
    flows.create_user(site.stack, username)
    with browser(site, cert) as client:
        # Five workers with a count each would let 5 x 10 guesses through; Redis counts them once.
        codes = [wrong_login(client, username) for _ in range(USER_LIMIT)]
        assert codes == [200] * USER_LIMIT, codes
        assert wrong_login(client, username) == 429
    site.stack.portal.stop()
    site.stack.portal.start()
    with browser(site, cert) as client:
        assert wrong_login(client, username) == 429, "a portal restart forgot the guesses"
