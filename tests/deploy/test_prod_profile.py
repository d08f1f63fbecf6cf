"""The prod profile as a server runs it: placeholder secrets stop the portal and the hub in one line, the
hub's loopback calls to the portal are never redirected to https, cookies and origins follow the domain,
and gunicorn runs one worker per core (at least 2) in prod but one process in dev.
(`check --deploy` being clean is tests/portal/test_settings.py::test_prod_deploy_check_is_clean.)"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.live import REPO
from tests.portal.test_settings import PROD_OK, manage

HUB_PROD = {
    "APP_PROFILE": "prod",
    "HUB_CLIENT_SECRET": secrets.token_urlsafe(48),
    "HUB_API_TOKEN": secrets.token_urlsafe(48),
    "CONFIGPROXY_AUTH_TOKEN": secrets.token_urlsafe(48),
    "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    "PROXY_SECRET": secrets.token_urlsafe(48),
    "APP_DOMAIN_NAME": "cfps.example.edu.cn",
}


@pytest.fixture(scope="module")
def oidc_key_file(tmp_path_factory):
    from portal.config.keys import new_rsa_private_key_pem

    path = tmp_path_factory.mktemp("keys") / "oidc.pem"
    path.write_text(new_rsa_private_key_pem())
    return str(path)


@pytest.mark.parametrize("key", ["HUB_CLIENT_SECRET", "HUB_API_TOKEN", "PROXY_SECRET"])
@pytest.mark.parametrize("value", ["change-me-to-a-long-random-string-0123456789", "x" * 64, "short"])
def test_portal_refuses_placeholder_hub_secrets_in_one_line(key, value, oidc_key_file):
    result = manage("check", **{**PROD_OK, "OIDC_RSA_PRIVATE_KEY_FILE": oidc_key_file, key: value})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "placeholder" in lines[0], result.stderr
    assert value not in lines[0]  # never echo a secret, even a bad one


@pytest.mark.parametrize(
    "key", ["HUB_CLIENT_SECRET", "HUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN", "JUPYTERHUB_CRYPT_KEY", "PROXY_SECRET"]
)
def test_hub_refuses_to_start_with_a_placeholder_secret_in_prod(tmp_path, key):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"CFPS_ENV_FILE": "/dev/null", "CFPS_VAR_DIR": str(tmp_path), **HUB_PROD, key: "changeme" * 8})
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "jupyterhub"), "-f", str(REPO / "hubconfig" / "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("CFPS hub configuration error:") and key in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_hub_accepts_generated_secrets_in_prod(tmp_path, monkeypatch):
    from hubconfig.config import refuse_missing_or_placeholder_secrets
    from portal.config import Config
    from portal.config.env import Env

    refuse_missing_or_placeholder_secrets(Config(Env(HUB_PROD)))  # no exception
    refuse_missing_or_placeholder_secrets(
        Config(Env({**HUB_PROD, "JUPYTERHUB_CRYPT_KEY": f"{secrets.token_hex(32)};{secrets.token_hex(32)}"}))
    )


PROBE = """
import json
from django.conf import settings
from django.test import Client

client = Client()
loopback = {"HTTP_HOST": "127.0.0.1:8010"}
public = {"HTTP_HOST": "hub.example.edu.cn", "HTTP_X_FORWARDED_PROTO": "https,http"}
discovery = client.get("/o/.well-known/openid-configuration", **loopback)
userinfo = client.get("/o/userinfo/", **loopback)
secure = client.get("/o/.well-known/openid-configuration", **public)
print(json.dumps({
    "discovery": discovery.status_code,
    "userinfo": userinfo.status_code,
    "secure_hsts": secure.headers.get("Strict-Transport-Security"),
    "csrf_trusted_origins": settings.CSRF_TRUSTED_ORIGINS,
    "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.LANGUAGE_COOKIE_SECURE],
}))
"""


def test_prod_answers_the_hubs_plain_http_loopback_calls_instead_of_redirecting(oidc_key_file):
    """The hub calls /o/token/ and /o/userinfo/ on http://127.0.0.1:PORTAL_PORT: a 301 there breaks every login."""
    result = manage("shell", "-c", PROBE, **PROD_OK, OIDC_RSA_PRIVATE_KEY_FILE=oidc_key_file)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["discovery"] == 200 and seen["userinfo"] == 401, seen  # answered, not 301 and not 400
    # Behind Nginx (X-Forwarded-Proto https, the proxy appending http) the request counts as https.
    assert seen["secure_hsts"] == "max-age=31536000", seen
    assert seen["csrf_trusted_origins"] == ["https://hub.example.edu.cn"]
    assert seen["cookies_secure"] == [True, True, True]


@pytest.mark.parametrize(
    ("env", "workers"),
    [
        ({"APP_PROFILE": "dev"}, 1),
        ({"APP_PROFILE": "prod"}, None),
        ({"APP_PROFILE": "prod", "GUNICORN_WORKERS": "1"}, 1),
    ],
    ids=["dev", "prod", "prod-one-worker"],
)
def test_password_checks_at_once_never_exceed_the_cores_over_all_workers(env, workers):
    from portal.config import Config
    from portal.config.env import Env

    web = Config(Env(env)).web
    cores = os.cpu_count() or 1
    assert web.workers == (workers or max(2, cores))
    assert web.password_checks_at_once == max(1, cores // web.workers)
    assert web.workers * web.password_checks_at_once <= max(cores, web.workers)
    assert Config(Env({**env, "PASSWORD_CHECKS_AT_ONCE": "3"})).web.password_checks_at_once == 3


GUNICORN_WORKERS = "import runpy, sys; print(runpy.run_path(sys.argv[1])['workers'])"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"APP_PROFILE": "dev"}, 1),
        ({"APP_PROFILE": "prod", "APP_DOMAIN_NAME": "cfps.example.edu.cn"}, max(2, os.cpu_count() or 1)),
        ({"APP_PROFILE": "prod", "APP_DOMAIN_NAME": "cfps.example.edu.cn", "GUNICORN_WORKERS": "3"}, 3),
    ],
    ids=["dev", "prod", "prod-explicit"],
)
def test_gunicorn_runs_one_process_in_dev_and_one_per_core_in_prod(env, expected):
    base = {k: v for k, v in os.environ.items() if k not in {"APP_PROFILE", "GUNICORN_WORKERS"}}
    result = subprocess.run(
        [sys.executable, "-c", GUNICORN_WORKERS, str(REPO / "deploy" / "gunicorn.conf.py")],
        env={**base, "CFPS_ENV_FILE": "/dev/null", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == expected
