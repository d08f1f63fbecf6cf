"""The production profile as a campus deploys it, live: one builder for tests/e2e/test_prod_stack.py and the
class-day benchmark's `--profile prod` (tests/bench/run_all.py).

APP_PROFILE=prod with MariaDB (a throwaway database on the machine's server, dropped afterwards), Redis (the
machine's server, a database number given by the caller), gunicorn's production worker count (one per core, at least 2),
the Node proxy, the Docker spawner's configuration (with shared volumes of the run's own), secrets generated for
this run, and Nginx with TLS in front of both origins (https://127.0.0.1:<port> for the portal,
https://hub.cfps.localhost:<port> for the hub and https://<name>.hub.cfps.localhost:<port> for each student's
server, one wildcard test certificate; prod refuses plain http and its cookies are Secure). Browsers send
`*.localhost` names to loopback themselves; the tests' clients connect to 127.0.0.1 with the name as Host and
SNI (tests/e2e/flows.py BrowserTransport).

A missing service (MariaDB, Redis, the Node proxy, nginx, openssl) skips (a failure when CI=true:
tests/conftest.py); the benchmark catches `pytest.skip.Exception` and says so.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy.conftest import BehindNginx, Nginx, self_signed_certificate
from tests.e2e import flows
from tests.e2e.conftest import require_node_proxy
from tests.live import Stack, free_port

# The hub's name: each student's server is <name>.HUB_HOST, covered by the run's wildcard certificate.
HUB_HOST = "hub.cfps.localhost"


def mariadb_root():
    import MySQLdb

    try:
        return MySQLdb.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=5)
    except MySQLdb.Error as exc:
        message = f"MariaDB on 127.0.0.1:3306 (root, no password) is needed for the prod stack: {exc}"
        pytest.skip(message)


def require_redis(redis_url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        message = f"Redis on 127.0.0.1:6379 is needed for the prod stack: {exc}"
        pytest.skip(message)


@contextmanager
def prod_stack(
    tmp: Path, redis_url: str, extra_env: dict[str, str] | None = None, nginx_workers: str = "1"
) -> Iterator[BehindNginx]:
    """The running prod stack behind Nginx (its `verify` trusts the run's own certificate); `extra_env` on top
    of the production configuration, `nginx_workers` Nginx's worker_processes ("auto" as Debian ships it)."""
    require_node_proxy()
    require_redis(redis_url)
    database = f"cfps_prod_live_{secrets.token_hex(4)}"
    root = mariadb_root()
    root.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    http_port, https_port = free_port(), free_port()
    cert, key = self_signed_certificate(tmp / "tls", HUB_HOST, f"*.{HUB_HOST}")  # (and IP 127.0.0.1: the portal)
    from portal.config.keys import new_rsa_private_key_pem

    (tmp / "oidc.pem").write_text(new_rsa_private_key_pem())
    env = {
        "APP_PROFILE": "prod",
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
        "REDIS_URL": redis_url,
        "PUBLIC_URL": f"https://127.0.0.1:{https_port}",
        "HUB_PUBLIC_URL": f"https://{HUB_HOST}:{https_port}",
        "APP_DOMAIN_NAME": "127.0.0.1",
        "HUB_DOMAIN_NAME": HUB_HOST,
        # The run's own shared volumes (made by setup_volumes below), never a campus's on the shared engine.
        "DOCKER_DATA_VOLUME": f"{database}-data",
        "DOCKER_TEAM_VOLUME": f"{database}-team",
        "SPAWNER": "docker",
        # prod refuses DOCKER_NETWORK=host in .env, and these tests may send nothing to a Docker bridge: .env names
        # a users' network (never made) and the hub's command line alone puts the servers on the host network
        # (below), with the hub on loopback where they look for it.
        "DOCKER_NETWORK": f"cfps-prod-live-{secrets.token_hex(4)}",
        "DOCKER_INTERFACE_IP": "127.0.0.1",
        "OIDC_RSA_PRIVATE_KEY_FILE": str(tmp / "oidc.pem"),
        "INVITE_CODES": flows.INVITE_CODE,
        **{key: secrets.token_urlsafe(48) for key in ("HUB_CLIENT_SECRET", "HUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN")},
        "PROXY_SECRET": secrets.token_urlsafe(48),
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
        **(extra_env or {}),
    }
    try:
        host_network = (  # JupyterHub's own options win over its config file (the test's network rule, above)
            "--CfpsDockerSpawner.network_name=host",
            "--CfpsDockerSpawner.use_internal_ip=True",
            "--CfpsDockerSpawner.ip=127.0.0.1",
        )
        stack = Stack(tmp / "stack", proxy="node", extra_env=env, workers=None, hub_args=host_network)
        stack.manage("setup_volumes", "-v", "0")
        with stack:
            site = tmp / "nginx" / "cfps.conf"
            site.parent.mkdir()
            stack.manage(
                "gen_nginx", "--tls", "--listen", "127.0.0.1", "--http-port", str(http_port),
                "--https-port", str(https_port), "--certificate", str(cert), "--certificate-key", str(key),
                "--cache-dir", str(tmp / "nginx" / "cache"), "--acme-webroot", str(tmp / "acme"),
                "--access-log", str(tmp / "nginx" / "cfps-access.log"), "--resolver", "127.0.0.1",
                "--output", str(site),
            )  # fmt: skip
            nginx = Nginx(site, tmp / "nginx", [http_port, https_port], workers=nginx_workers).start()
            try:
                yield BehindNginx(stack, nginx, https_port, scheme="https", cafile=cert, hub_host=HUB_HOST)
            finally:
                nginx.stop()
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        root.close()
        remove_volumes(env["DOCKER_DATA_VOLUME"], env["DOCKER_TEAM_VOLUME"])


def remove_volumes(*names: str) -> None:
    """Remove the Docker volumes of these names that exist (this run's own), if the engine answers."""
    import docker

    try:
        client = docker.from_env(timeout=30)
    except docker.errors.DockerException:
        return
    try:
        for name in names:
            try:
                client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # still in use: say so, without hiding the test's own failure
                warnings.warn(f"could not remove the Docker volume {name}: {exc}", stacklevel=2)
    finally:
        client.close()
