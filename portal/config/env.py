"""Read the one `.env` file that configures both the portal and the hub.

Rules:
- The file is `<repo>/.env` unless `CFPS_ENV_FILE` names another one.
- A variable already set in the process environment wins over the file, so an operator (or a test) can
  override one key without editing the file.
- Syntax: what python-dotenv reads (`KEY=value`, blank lines, `#` comments, an optional `export ` prefix,
  single or double quotes), without interpolation, so that `$` in a password stays a `$`. A line it cannot read
  stops start-up with the line's number (python-dotenv would only log it and carry on). What systemd's
  EnvironmentFile= would read differently is refused by `gen_systemd` (deploy/management/commands/gen_systemd.py).
- DATABASE_URL through dj-database-url, with what the portal adds (below, `database_config`).

This module imports nothing from Django so that `hubconfig/` can use it too.

`python -m portal.config prepare` makes the generated secrets (see GENERATED_SECRETS below).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

import dj_database_url
from dotenv.parser import parse_stream

from portal.config import table

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def var_dir() -> Path:
    """Runtime state (databases, generated secrets, logs): `var/` in the repo unless CFPS_VAR_DIR says."""
    return Path(os.environ.get("CFPS_VAR_DIR") or BASE_DIR / "var")


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvError(ValueError):
    """A configuration value is missing or malformed; the message is one line meant for an operator."""


def env_path() -> Path:
    return Path(os.environ.get("CFPS_ENV_FILE") or BASE_DIR / ".env")


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None and not binding.error:
            continue  # a blank line or a comment
        if binding.error or binding.value is None or not _KEY.fullmatch(binding.key):
            line = binding.original.string.strip().splitlines()[0] if binding.original.string.strip() else ""
            raise EnvError(f".env line {binding.original.line} is not KEY=value: {line!r}")
        values[binding.key] = binding.value
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
    """Typed access to the merged configuration; every getter names the key in its error.

    A key is asked for by name only (no default at the call site): an empty value means the default the key
    table declares for this profile (portal/config/table.py), "" where the table says a section computes it.
    Asking for a key the table lacks is a programming error (KeyError); a key in `.env` the table lacks is an
    operator's error, reported with the nearest known name when the values are read."""

    def __init__(self, values: dict[str, str] | None = None):
        self.values = load() if values is None else values
        # What .env holds, and the retired keys wherever they are set (their old meaning must not linger).
        unknown = table.unknown_keys([*self.values, *(key for key in table.RETIRED if key in os.environ)])
        if unknown:
            raise EnvError("; ".join(item.message() for item in unknown))

    @property
    def profile(self) -> str:
        """APP_PROFILE, read here and nowhere else: "dev" (the default, the embedded set-up) or "prod"."""
        value = (self._given("APP_PROFILE") or table.BY_NAME["APP_PROFILE"].default_for("dev")).strip().lower()
        if value not in PROFILES:
            raise EnvError(f"APP_PROFILE must be one of {', '.join(PROFILES)}, not {value!r} (see .env)")
        return value

    @property
    def prod(self) -> bool:
        return self.profile == "prod"

    def _given(self, key: str) -> str:
        """The value as written (file, else process environment), "" when neither has one."""
        value = self.values.get(key)
        if value is None:
            value = os.environ.get(key)
        return value or ""

    def given(self, key: str) -> bool:
        """Whether .env (or the process environment) sets `key` at all, default aside."""
        table.BY_NAME[key]  # noqa: B018  (a KeyError for an undeclared key)
        return bool(self._given(key))

    def __contains__(self, key: str) -> bool:
        return self.given(key)

    def get(self, key: str) -> str:
        spec = table.BY_NAME[key]
        return self._given(key) or spec.default_for(self.profile)

    def bool(self, key: str) -> bool:
        value = self.get(key).strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off", ""}:
            return False
        raise EnvError(f"{key} must be true or false, not {value!r}")

    def int(self, key: str) -> int | None:
        """The number, or None when neither .env nor the table gives one (the section computes it)."""
        value = self.get(key).strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise EnvError(f"{key} must be a whole number, not {value!r}") from None

    def float(self, key: str) -> float:
        value = self.get(key).strip()
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            raise EnvError(f"{key} must be a number such as 60 or 0.5, not {value!r}")
        return number

    def list(self, key: str) -> list[str]:
        sep = table.BY_NAME[key].sep
        return [item.strip() for item in self.get(key).split(sep) if item.strip()]

    def secret(self, key: str, generate: bool = True) -> str:
        """The value of `key` from .env; else, when `generate` (outside prod), the one `generate_secrets` made
        into `var/secrets/<key>`, so the portal, the hub and later runs all see the same value. Only reads:
        a missing file is an error naming the step that makes it."""
        value = self.get(key)
        if value:
            return value
        if not generate:
            raise EnvError(f"{key} must be set in .env")
        return read_generated_secret(key)


# --- Generated secrets -------------------------------------------------------------------------------------
# What outside prod may come from var/secrets/ instead of .env, and how each one is made. Made by an explicit
# step, `python -m portal.config prepare` (./run.sh, ./run.sh --prepare and ./test.sh run it first), never on
# import: reading the settings or the hub's config must not write files (STYLE.md, rule 2).
PREPARE_HINT = "run ./run.sh --prepare (or .venv/bin/python -m portal.config prepare)"


def _token(nbytes: int):
    return lambda: secrets.token_urlsafe(nbytes)


def _rsa_private_key_pem() -> str:
    from portal.config.keys import new_rsa_private_key_pem  # `cryptography` only when a key is made

    return new_rsa_private_key_pem()


GENERATED_SECRETS = {
    "SECRET_KEY": _token(50),  # dev.py; test.py and prod.py have their own
    "HUB_CLIENT_SECRET": _token(48),
    "HUB_API_TOKEN": _token(48),
    "CONFIGPROXY_AUTH_TOKEN": _token(48),
    "PROXY_SECRET": _token(48),
    "JUPYTERHUB_CRYPT_KEY": lambda: secrets.token_hex(32),  # JupyterHub wants hex, 32 bytes
    "DATASET_DB_PASSWORD": _token(24),  # when DATASET_DATABASE_URL names no password
    "OIDC_RSA_PRIVATE_KEY_PEM": _rsa_private_key_pem,
}
# Other keys of .env that make a generated secret unnecessary.
_GIVEN_BY = {"OIDC_RSA_PRIVATE_KEY_PEM": ("OIDC_RSA_PRIVATE_KEY", "OIDC_RSA_PRIVATE_KEY_FILE")}


def secrets_dir(var: Path | None = None) -> Path:
    return (var or var_dir()) / "secrets"


def read_generated_secret(name: str) -> str:
    if name not in GENERATED_SECRETS:
        raise ValueError(f"{name} is not in GENERATED_SECRETS")  # a programming error, not an operator's
    path = secrets_dir() / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise EnvError(f"{path} is missing: {PREPARE_HINT}") from None


def generate_secrets(var_dir: Path | None = None, env: Env | None = None) -> list[str]:
    """Make every generated secret that `env` does not give and `var_dir/secrets/` lacks; return their names.

    Rules: each file is written whole and then linked into place, so a reader (another process running the
    same step) sees no file or the complete one; an existing file is never overwritten, so a second run
    changes nothing; files are 0600 in a 0700 folder. Prod reads every secret from .env: nothing is made.
    """
    env = env or Env()
    if env.prod:
        return []
    folder = secrets_dir(var_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)
    made = []
    for name, maker in GENERATED_SECRETS.items():
        path = folder / name
        given = (key for key in (name, *_GIVEN_BY.get(name, ())) if key in table.BY_NAME)
        if any(env.given(key) for key in given) or path.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(maker())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue  # another run made it first; keep theirs
            made.append(name)
        finally:
            os.unlink(tmp)
    return made


def database_config(url: str, base_dir: Path = BASE_DIR) -> dict:
    """Turn `DATABASE_URL` into a Django DATABASES entry (parsed by dj-database-url).

    Empty means the embedded default, SQLite at `var/portal.sqlite3`. Supported schemes: `sqlite:///path`
    (relative to the repo unless absolute) and `mysql://user:pass@host:port/name` (or `mariadb://`) for
    MySQL/MariaDB; the query string becomes driver options. What the portal adds: SQLite's pragmas and test
    name (`sqlite_config`), utf8mb4 and strict mode on MySQL, connections kept for 60 s, one-line errors.
    """
    if not url:
        return sqlite_config(var_dir() / "portal.sqlite3")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "mariadb":
        url, scheme = "mysql" + url[len("mariadb") :], "mysql"
    if scheme not in {"sqlite", "mysql"}:
        raise EnvError(f"DATABASE_URL scheme {scheme!r} is not supported; use sqlite:/// or mysql://")
    try:
        parsed = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise EnvError(f"DATABASE_URL is not a database URL: {exc}") from None
    if scheme == "sqlite":
        # sqlite:///var/x.sqlite3 is relative to the repo (not to the working folder), sqlite:////srv/x absolute.
        return sqlite_config(base_dir / parsed["NAME"])
    if not parsed["NAME"]:
        raise EnvError("DATABASE_URL must name a database: mysql://user:pass@host:3306/NAME")
    parsed["OPTIONS"] = {
        "charset": "utf8mb4",
        # Strict mode turns silent truncation into errors; Django's own recommendation.
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        **parsed.get("OPTIONS", {}),
    }
    return {
        **parsed,
        "HOST": parsed["HOST"] or "127.0.0.1",
        "PORT": str(parsed["PORT"] or 3306),
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }


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


def main(argv: list[str] | None = None) -> int:
    """`python -m portal.config prepare`: a command of its own, not manage.py's, since the settings cannot
    be imported before the secrets they read exist."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m portal.config")
    parser.add_argument("step", choices=["prepare"], help="prepare: generate the missing secrets into var/secrets/")
    parser.parse_args(argv)
    try:
        made = generate_secrets()
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {secrets_dir()}: {exc.strerror}", file=sys.stderr)
        return 1
    if made:
        print(f"==> Generated {', '.join(made)} into {secrets_dir()} (owner-only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
