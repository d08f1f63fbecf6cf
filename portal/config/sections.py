"""The small sections of the typed configuration: the hub's settings, the portal's web process, the limits on
guesses and requests, the accounts bootstrap makes, the record of who did what, the production deploy files, and
the secrets.

Each one is built once per process from `Env` by `portal.config.Config` and handed on; a value that cannot be
used raises EnvError naming its key (one line for the operator). Defaults live in the key table
(portal/config/table.py); what is computed here says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from portal.config import placeholders, table
from portal.config.env import Env, EnvError


def cores() -> int:
    return os.cpu_count() or 1


def _at_least(env: Env, key: str, least: int, computed: int | None = None) -> int:
    value = env.int(key)
    if value is None:
        value = computed if computed is not None else least
    if value < least:
        raise EnvError(f"{key} must be {least} or more, not {value}")
    return value


@dataclass(frozen=True)
class Hub:
    """JupyterHub, its proxy and the users' servers (hubconfig/config.py applies these)."""

    proxy: str  # python | node
    spawner: str  # "" (chosen at the hub's start: hubconfig/docker.py choose_spawner), docker, swarm, local
    access_token_seconds: int
    refresh_token_seconds: int
    auth_refresh_seconds: int
    idle_timeout_seconds: int  # 0: no idle culler
    cull_every_seconds: int
    active_server_limit: int
    concurrent_spawn_limit: int
    spawn_timeout_seconds: int
    start_server_at_login: bool  # a student's portal login starts their server (accounts/signals.py)


def hub_from_env(env: Env) -> Hub:
    proxy = env.get("PROXY").strip().lower()
    if proxy not in {"python", "node"}:
        raise EnvError(f"PROXY must be one of python, node, not {proxy!r}")
    spawner = env.get("SPAWNER").strip().lower()
    if spawner not in {"", "docker", "swarm", "local"}:
        raise EnvError(f"SPAWNER must be one of docker, swarm, local (or empty), not {spawner!r}")
    idle = _at_least(env, "HUB_IDLE_TIMEOUT_SECONDS", 0)
    return Hub(
        proxy=proxy,
        spawner=spawner,
        access_token_seconds=_at_least(env, "OAUTH_ACCESS_TOKEN_SECONDS", 60),
        refresh_token_seconds=_at_least(env, "OAUTH_REFRESH_TOKEN_SECONDS", 60),
        auth_refresh_seconds=_at_least(env, "HUB_AUTH_REFRESH_SECONDS", 0),
        idle_timeout_seconds=idle,
        # Half the timeout, between 10 s and 5 min: a server idles at most 1.5 x the timeout.
        cull_every_seconds=_at_least(env, "HUB_CULL_EVERY_SECONDS", 1, max(min(idle // 2, 300), 10)),
        active_server_limit=_at_least(env, "HUB_ACTIVE_SERVER_LIMIT", 0),
        concurrent_spawn_limit=_at_least(env, "HUB_CONCURRENT_SPAWN_LIMIT", 0),
        spawn_timeout_seconds=_at_least(env, "HUB_SPAWN_TIMEOUT_SECONDS", 1),
        start_server_at_login=env.bool("START_SERVER_AT_LOGIN"),
    )


@dataclass(frozen=True)
class Web:
    """The portal's web process: Django's database, cache and debug switch, gunicorn's processes."""

    debug: bool
    time_zone: str
    database_url: str  # "" : SQLite in var/ (portal.config.env.database_config)
    redis_url: str
    allowed_hosts: list[str]  # aliases beyond the portal's own host (topology) and 127.0.0.1
    bind: str  # gunicorn's address; "" : 127.0.0.1:PORTAL_PORT
    workers: int
    threads: int
    password_checks_at_once: int


def web_from_env(env: Env) -> Web:
    # dev: one process, whose in-process cache counts the guesses and must see every request. prod: one per core,
    # at least 2 (the counts are in Redis); each has its threads, and a password check releases the GIL, so more
    # processes than cores add memory (about 60 MB each) and, with a check slot each, checks beyond the cores.
    workers = _at_least(env, "GUNICORN_WORKERS", 1, max(2, cores()) if env.prod else 1)
    return Web(
        debug=env.bool("DEBUG"),
        time_zone=env.get("TIME_ZONE"),
        database_url=env.get("DATABASE_URL"),
        redis_url=env.get("REDIS_URL"),
        allowed_hosts=env.list("ALLOWED_HOSTS"),
        bind=env.get("BIND"),
        workers=workers,
        threads=_at_least(env, "GUNICORN_THREADS", 1),
        # The cores shared out over the processes, at least 1: a class's logins never run more checks at once
        # than the machine has cores, and pages keep a core's share (accounts/hashers.py).
        password_checks_at_once=_at_least(env, "PASSWORD_CHECKS_AT_ONCE", 1, max(1, cores() // workers)),
    )


_RATE = re.compile(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]")


def rate(env: Env, key: str) -> str:
    """Rates look like `5/m`, `100/h` or `20/10m` (accounts/throttle.py); checked at start-up, not per request."""
    value = env.get(key).replace(" ", "")
    if not _RATE.fullmatch(value):
        raise EnvError(f"{key} must look like 10/m, 100/h or 20/10m, not {value!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """Limits on guesses (accounts/throttle.py: only failures count) and on requests where the risk is volume
    (accounts/ratelimits.py: every request counts)."""

    signup_code_failures: str
    login_user_failures: str
    login_ip_failures: str
    login_device_failures: str
    device_cookie_days: int
    oauth_token_rate: str
    oauth_userinfo_rate: str
    password_reset_rate: str
    password_reset_ip_rate: str
    set_password_rate: str
    set_password_ip_rate: str
    admin_upload_rate: str
    announcements_rate: str
    server_state_rate: str


def limits_from_env(env: Env) -> Limits:
    return Limits(
        signup_code_failures=rate(env, "SIGNUP_CODE_FAILURE_LIMIT"),
        login_user_failures=rate(env, "LOGIN_USER_FAILURE_LIMIT"),
        login_ip_failures=rate(env, "LOGIN_IP_FAILURE_LIMIT"),
        login_device_failures=rate(env, "LOGIN_DEVICE_FAILURE_LIMIT"),
        device_cookie_days=_at_least(env, "DEVICE_COOKIE_DAYS", 1),
        oauth_token_rate=rate(env, "OAUTH_TOKEN_RATE_LIMIT"),
        oauth_userinfo_rate=rate(env, "OAUTH_USERINFO_RATE_LIMIT"),
        password_reset_rate=rate(env, "PASSWORD_RESET_RATE_LIMIT"),
        password_reset_ip_rate=rate(env, "PASSWORD_RESET_IP_RATE_LIMIT"),
        set_password_rate=rate(env, "SET_PASSWORD_RATE_LIMIT"),
        set_password_ip_rate=rate(env, "SET_PASSWORD_IP_RATE_LIMIT"),
        admin_upload_rate=rate(env, "ADMIN_UPLOAD_RATE_LIMIT"),
        announcements_rate=rate(env, "ANNOUNCEMENTS_RATE_LIMIT"),
        server_state_rate=rate(env, "SERVER_STATE_RATE_LIMIT"),
    )


@dataclass(frozen=True)
class Audit:
    """The record of who did what (audit/): how long an entry is kept."""

    retention_days: int


def audit_from_env(env: Env) -> Audit:
    return Audit(retention_days=_at_least(env, "AUDIT_RETENTION_DAYS", 1))


@dataclass(frozen=True)
class Accounts:
    """What `manage.py bootstrap` creates, whether sign-up asks for an e-mail address, the staff's second factor
    and how long idle sessions last (accounts/otp.py, accounts/sessions.py)."""

    admin_username: str
    admin_password: str
    admin_email: str
    invite_codes: list[str]
    signup_email: str  # optional | required | off
    staff_otp: str  # required | optional (dev only)
    staff_idle_minutes: int
    shared_pc_idle_minutes: int


def accounts_from_env(env: Env, mail_enabled: bool) -> Accounts:
    # Without mail the address would never be used (reset mails are its only purpose), and a portal should not
    # collect personal data it has no use for.
    mode = env.get("SIGNUP_EMAIL").strip().lower() or ("optional" if mail_enabled else "off")
    if mode not in {"optional", "required", "off"}:
        raise EnvError(f"SIGNUP_EMAIL must be optional, required or off, not {mode!r}")
    staff_otp = env.get("STAFF_OTP").strip().lower()
    if staff_otp not in {"required", "optional"}:
        raise EnvError(f"STAFF_OTP must be required or optional, not {staff_otp!r}")
    if staff_otp == "optional" and env.prod:
        raise EnvError("STAFF_OTP=optional is for dev only: in prod every staff account signs in with a second factor")
    return Accounts(
        admin_username=env.get("ADMIN_USERNAME"),
        admin_password=env.get("ADMIN_PASSWORD"),
        admin_email=env.get("ADMIN_EMAIL"),
        invite_codes=["".join(code.split()).upper() for code in env.list("INVITE_CODES")],
        signup_email=mode,
        staff_otp=staff_otp,
        staff_idle_minutes=_at_least(env, "STAFF_IDLE_MINUTES", 1),
        shared_pc_idle_minutes=_at_least(env, "SHARED_PC_IDLE_MINUTES", 1),
    )


@dataclass(frozen=True)
class Deploy:
    """The production deploy files (gen_nginx, gen_systemd, gen_firewall)."""

    app_domain_name: str
    service_user: str
    hsts_seconds: int
    hsts_include_subdomains: bool
    bridge_interfaces: list[str]
    firewall_mysql_port: int  # the MySQL port containers may reach: the notebooks' dataset's


def deploy_from_env(env: Env) -> Deploy:
    try:
        mysql_port = urlsplit(env.get("DATASET_DATABASE_URL")).port or 3306
    except ValueError:
        raise EnvError("DATASET_DATABASE_URL has a port that is not a number") from None
    return Deploy(
        app_domain_name=env.get("APP_DOMAIN_NAME").strip().lower(),
        service_user=env.get("SERVICE_USER"),
        hsts_seconds=_at_least(env, "SECURE_HSTS_SECONDS", 0),
        hsts_include_subdomains=env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS"),
        bridge_interfaces=env.list("DOCKER_BRIDGE_INTERFACES"),
        firewall_mysql_port=mysql_port,
    )


class Secrets:
    """The secrets, each read when first asked for: from .env, else (outside prod) from var/secrets/, where
    `python -m portal.config prepare` made it. Never printed; `missing` and `placeholders` name keys only."""

    def __init__(self, env: Env):
        self.env = env
        self.generate = not env.prod

    def get(self, key: str) -> str:
        """The secret, or EnvError naming the key (prod) or the step that makes it (dev)."""
        return self.env.secret(key, generate=self.generate and table.BY_NAME[key].generated)

    def missing(self, process: str) -> list[str]:
        """The secrets `process` ("portal" or "hub") needs that prod's .env leaves out (empty outside prod)."""
        if self.generate:
            return []
        return [key for key in table.secrets_needed_by(process) if not self.env.given(key)]

    def placeholders(self, process: str) -> list[str]:
        return placeholders.placeholders({key: self.env.get(key) for key in table.secrets_needed_by(process)})

    def oidc_private_key_pem(self) -> str:
        from portal.config import keys

        return keys.oidc_private_key_pem(self.env, generate=self.generate)

    @property
    def oidc_key_file(self) -> Path | None:
        """The file the OIDC key is read from (backups keep it), or None when it is inline or generated."""
        path = self.env.get("OIDC_RSA_PRIVATE_KEY_FILE")
        return Path(path) if path and not self.env.given("OIDC_RSA_PRIVATE_KEY") else None
