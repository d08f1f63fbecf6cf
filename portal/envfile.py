"""Read the one `.env` file that configures both the portal and the hub.

Rules:
- The file is `<repo>/.env` unless `CFPS_ENV_FILE` names another one.
- A variable already set in the process environment wins over the file, so an operator (or a test) can
  override one key without editing the file.
- Syntax is the common subset of shell and docker-compose env files: `KEY=value`, blank lines, `#` comments,
  optional `export ` prefix, values optionally wrapped in single or double quotes. No interpolation.

This module imports nothing from Django so that `hubconfig/` can use it too.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Runtime state (databases, generated secrets, logs): `var/` in the repo unless CFPS_VAR_DIR says."""
    return Path(os.environ.get("CFPS_VAR_DIR") or BASE_DIR / "var")


_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class EnvError(ValueError):
    """A configuration value is missing or malformed; the message is one line meant for an operator."""


def env_path() -> Path:
    return Path(os.environ.get("CFPS_ENV_FILE") or BASE_DIR / ".env")


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise EnvError(f".env line {lineno} is not KEY=value: {raw!r}")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load(path: Path | None = None) -> dict[str, str]:
    """Return the file's values overlaid with the process environment (process wins)."""
    path = path or env_path()
    values = parse(path.read_text(encoding="utf-8")) if path.exists() else {}
    for key in list(values):
        if key in os.environ:
            values[key] = os.environ[key]
    return values


PROFILES = ("dev", "prod")


class Env:
    """Typed access to the merged configuration; every getter names the key in its error."""

    @property
    def profile(self) -> str:
        """APP_PROFILE, read here and nowhere else: "dev" (the default, the embedded set-up) or "prod"."""
        value = self.get("APP_PROFILE", "dev").strip().lower()
        if value not in PROFILES:
            raise EnvError(f"APP_PROFILE must be one of {', '.join(PROFILES)}, not {value!r} (see .env)")
        return value

    @property
    def prod(self) -> bool:
        return self.profile == "prod"

    def __init__(self, values: dict[str, str] | None = None):
        self.values = load() if values is None else values

    def __contains__(self, key: str) -> bool:
        return bool(self.get(key))

    def get(self, key: str, default: str = "") -> str:
        value = self.values.get(key)
        if value is None:
            value = os.environ.get(key)
        return default if value is None or value == "" else value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key).lower()
        if not value:
            return default
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise EnvError(f"{key} must be true or false, not {value!r}")

    def int(self, key: str, default: int) -> int:
        value = self.get(key)
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            raise EnvError(f"{key} must be a whole number, not {value!r}") from None

    def list(self, key: str, default: str = "", sep: str = ",") -> list[str]:
        return [item.strip() for item in self.get(key, default).split(sep) if item.strip()]

    def secret(self, key: str, generate: bool = True, nbytes: int = 48, maker=None) -> str:
        """The value of `key` from .env; else, when `generate`, one made once and kept in
        `var/secrets/<key>` (mode 0600) so the portal, the hub and later runs all see the same value."""
        value = self.get(key)
        if value:
            return value
        if not generate:
            raise EnvError(f"{key} must be set in .env")
        return generated_secret(key, maker or (lambda: secrets.token_urlsafe(nbytes)))


def generated_secret(name: str, maker) -> str:
    folder = var_dir() / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(maker())
    return path.read_text(encoding="utf-8").strip()


def database_config(url: str, base_dir: Path = BASE_DIR) -> dict:
    """Turn `DATABASE_URL` into a Django DATABASES entry.

    Empty means the embedded default, SQLite at `var/portal.sqlite3`. Supported schemes: `sqlite:///path`
    (relative to the repo unless absolute) and `mysql://user:pass@host:port/name` for MySQL/MariaDB.
    """
    if not url:
        return sqlite_config(var_dir() / "portal.sqlite3")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///var/x.sqlite3 is relative to the repo, sqlite:////srv/x.sqlite3 is absolute.
        raw = unquote(url.split("://", 1)[1])
        path = Path(raw[1:]) if raw.startswith("//") else base_dir / raw.lstrip("/")
        return sqlite_config(path)
    if parts.scheme in {"mysql", "mariadb"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise EnvError("DATABASE_URL must name a database: mysql://user:pass@host:3306/NAME")
        options = {
            "charset": "utf8mb4",
            # Strict mode turns silent truncation into errors; Django's own recommendation.
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
        for key, vals in parse_qs(parts.query).items():
            options[key] = vals[-1]
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 3306),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    raise EnvError(f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:/// or mysql://")


def sqlite_config(path: Path) -> dict:
    # SQLite creates the file but not its folder; a fresh clone has no var/ yet.
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            # IMMEDIATE takes the write lock when a transaction starts, so two sign-ups redeeming the
            # same invite serialise instead of failing with "database is locked" on upgrade.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # Each gunicorn thread keeps its connection: opening one (the journal_mode pragma above most of all)
        # took a third of a small request's CPU, six times per login.
        "CONN_MAX_AGE": 60,
        # A file, not :memory:, in tests too: threads in the concurrency tests need separate connections.
        "TEST": {"NAME": str(path.with_name(path.stem + "-test.sqlite3"))},
    }
