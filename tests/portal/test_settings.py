"""Configuration: one .env, process environment wins, database URLs, and a prod profile that refuses to
start without its secrets. Start-up checks run in a real subprocess, as an operator would meet them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.config import env as envfile

REPO = Path(__file__).resolve().parents[2]


def manage(*args, env_file="", **env):
    """Run manage.py in a subprocess with only the given configuration."""
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    base["CFPS_ENV_FILE"] = env_file or "/dev/null"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_file_syntax():
    values = envfile.parse(
        "# comment\n\nexport A=1\nB = two words \nC='quoted # not a comment'\nD=\"x\"\nE=value # trailing\nF=\n"
    )
    assert values == {"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "x", "E": "value", "F": ""}


def test_env_file_keeps_dollar_signs_literally():
    # No interpolation: a generated password with `$` in it means what it says, as systemd reads it.
    assert envfile.parse("P=pa$$w${HOME}rd\nQ='$HOME'\n") == {"P": "pa$$w${HOME}rd", "Q": "$HOME"}


@pytest.mark.parametrize("broken", ["this is not an assignment", "JUST_A_NAME", "1X=2", 'A="never closed'])
def test_env_file_rejects_a_broken_line(broken):
    with pytest.raises(envfile.EnvError, match="line 2"):
        envfile.parse(f"A=1\n{broken}\n")


def test_process_environment_wins_over_the_file(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("PORT=8000\nTIME_ZONE=UTC\n")
    monkeypatch.setenv("PORT", "9000")
    assert envfile.load(path) == {"PORT": "9000", "TIME_ZONE": "UTC"}


@pytest.mark.parametrize(
    ("url", "engine", "name"),
    [
        ("", "django.db.backends.sqlite3", str(envfile.BASE_DIR / "var" / "portal.sqlite3")),
        ("sqlite:///var/other.sqlite3", "django.db.backends.sqlite3", str(envfile.BASE_DIR / "var" / "other.sqlite3")),
        ("sqlite:////srv/portal.sqlite3", "django.db.backends.sqlite3", "/srv/portal.sqlite3"),
        ("mysql://u:p%40ss@db.local:3307/cfps_portal", "django.db.backends.mysql", "cfps_portal"),
    ],
)
def test_database_url_forms(url, engine, name):
    config = envfile.database_config(url)
    assert (config["ENGINE"], config["NAME"]) == (engine, name)


def test_mysql_url_query_becomes_driver_options_and_mariadb_is_mysql():
    config = envfile.database_config("mariadb://u@db.local/cfps_portal?ssl_mode=REQUIRED")
    assert (config["ENGINE"], config["HOST"], config["PORT"]) == ("django.db.backends.mysql", "db.local", "3306")
    assert config["OPTIONS"]["ssl_mode"] == "REQUIRED" and config["OPTIONS"]["charset"] == "utf8mb4"


def test_mysql_url_uses_utf8mb4_and_strict_mode():
    config = envfile.database_config("mysql://u:p%40ss@db.local:3307/cfps_portal")
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == ("u", "p@ss", "db.local", "3307")
    assert config["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in config["OPTIONS"]["init_command"]


@pytest.mark.parametrize("url", ["postgres://x@y/z", "mysql://root@127.0.0.1:3306/"])
def test_unsupported_database_urls_are_refused(url):
    with pytest.raises(envfile.EnvError):
        envfile.database_config(url)


def test_dev_profile_starts_with_nothing_configured(tmp_path):
    result = manage("check", APP_PROFILE="dev", DATABASE_URL=f"sqlite:///{tmp_path}/portal.sqlite3")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def oidc_key_file(tmp_path_factory):
    from portal.config.keys import new_rsa_private_key_pem

    path = tmp_path_factory.mktemp("keys") / "oidc.pem"
    path.write_text(new_rsa_private_key_pem())
    return str(path)


PROD_OK = {
    "APP_PROFILE": "prod",
    "HUB_CLIENT_SECRET": "hub-client-secret-for-tests-only-0123456789abcdefghijklmnopqrstuv",
    "HUB_API_TOKEN": "hub-api-token-for-tests-only-0123456789abcdefghijklmnopqrstuvwxyz",
    "PROXY_SECRET": "proxy-secret-for-tests-only-0123456789abcdefghijklmnopqrstuvwxyz",
    "SECRET_KEY": "k9R2vX7mQ4tL8pZ1wN6cY3bH5jF0sD2aG7eU4iO9rT1yP6lK3xM8nB5vC0zQ",
    "DATABASE_URL": "mysql://portal:secret@127.0.0.1:3306/cfps_portal",  # `check` does not connect
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "APP_DOMAIN_NAME": "hub.example.edu.cn",
}


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "APP_DOMAIN_NAME",
        "HUB_CLIENT_SECRET",
        "HUB_API_TOKEN",
        "PROXY_SECRET",
        "OIDC_RSA_PRIVATE_KEY_FILE",
    ],
)
def test_prod_refuses_to_start_without_its_settings_in_one_line(missing, oidc_key_file):
    env = {**PROD_OK, "OIDC_RSA_PRIVATE_KEY_FILE": oidc_key_file, missing: ""}
    result = manage("check", **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing.split("_")[0] in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("key", ["change-me", "x" * 60, "short"])
def test_prod_refuses_a_placeholder_secret_key(key, oidc_key_file):
    result = manage("check", **{**PROD_OK, "OIDC_RSA_PRIVATE_KEY_FILE": oidc_key_file, "SECRET_KEY": key})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_unknown_profile_is_refused_in_one_line():
    result = manage("check", APP_PROFILE="staging")
    assert result.returncode != 0
    assert "APP_PROFILE" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LOGIN_USER_FAILURE_LIMIT", "ten per minute"),
        ("SIGNUP_CODE_FAILURE_LIMIT", "20/0m"),
        ("DEVICE_COOKIE_DAYS", "0"),
        ("PASSWORD_CHECKS_AT_ONCE", "0"),
        ("PORT", "eighty"),
        ("DEBUG", "maybe"),
    ],
)
def test_malformed_values_are_refused_in_one_line(key, value):
    result = manage("check", APP_PROFILE="dev", **{key: value})
    assert result.returncode != 0
    assert key in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("old", ["SIGNUP_RATE_LIMIT", "LOGIN_RATE_LIMIT", "LOGIN_IP_RATE_LIMIT", "TRUSTED_PROXIES"])
def test_a_throttle_setting_that_changed_meaning_is_refused_in_one_line(old):
    result = manage("check", APP_PROFILE="dev", **{old: "60/h"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and old in lines[0] and "Traceback" not in result.stderr


def test_prod_reports_every_missing_setting_at_once():
    result = manage("check", APP_PROFILE="prod")
    line = result.stderr.strip()
    expected = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "HUB_CLIENT_SECRET", "PROXY_SECRET")
    for key in (*expected, "OIDC_RSA_PRIVATE_KEY_FILE"):
        assert key in line
    assert "\n" not in line


def test_prod_deploy_check_is_clean(oidc_key_file):
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PROD_OK, OIDC_RSA_PRIVATE_KEY_FILE=oidc_key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_prod_refuses_a_shared_hub_origin_without_the_opt_out_in_one_line(oidc_key_file):
    env = {**PROD_OK, "OIDC_RSA_PRIVATE_KEY_FILE": oidc_key_file, "USER_SUBDOMAINS": "false"}
    refused = manage("check", **env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "ALLOW_SHARED_HUB_ORIGIN=true" in lines[0], refused.stderr
    accepted = manage("check", **env, ALLOW_SHARED_HUB_ORIGIN="true")
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize("host", ["hub.cfps.example.edu", "alice.hub.cfps.example.edu", ".hub.cfps.example.edu"])
def test_allowed_hosts_may_not_name_the_hubs_host_or_a_students(host):
    result = manage("check", APP_DOMAIN_NAME="cfps.example.edu", ALLOWED_HOSTS=host)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "ALLOWED_HOSTS must not name the hub's host hub.cfps.example.edu or one under it" in result.stderr
