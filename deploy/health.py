"""Is every part of the system well? For `GET /healthz` (uptime monitors) and `manage.py status` (operators).

Why our own and not django-health-check: the portal's own part (database + cache) is two lines, and the
rest of what `status` checks (the hub's API, the proxy, Docker and its image, the dataset account, disks,
the certificate) lives outside Django, where that library has no checks; one small module keeps every
check and its hint in one place.

Rules:
- A check never raises: it returns a Check whose `detail` says what it saw and, when not ok, `hint` says
  what an operator does next, one line each. No secret ever goes into either.
- Every network call is to loopback or the configured database, with a timeout of a few seconds.
- `/healthz` runs only `database()`, `cache()` and `worker()` (a row's time): cheap enough for a monitor every few
  seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 5
# Free space below either limit is a failure: a full var/ breaks sign-up, a full Docker root every start.
MIN_FREE_BYTES = 1024**3
MIN_FREE_FRACTION = 0.05
CERT_WARN_DAYS = 14

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --- the portal's own parts (Django) --------------------------------------------------------------------
def database(alias: str = "default") -> Check:
    from django.db import connections

    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # OperationalError, InterfaceError, a driver's own error
        connections[alias].close_if_unusable_or_obsolete()
        return Check("database", False, _first_line(exc), "start the database server (systemctl status mariadb)")
    vendor = connections[alias].vendor
    return Check("database", True, f"{vendor} answers")


def cache() -> Check:
    from django.core.cache import cache as default_cache

    key = "cfps:healthz"
    try:
        value = str(time.monotonic_ns())
        default_cache.set(key, value, 30)
        if default_cache.get(key) != value:
            raise RuntimeError("a value written was not read back")
    except Exception as exc:  # redis.ConnectionError, TimeoutError...
        return Check("cache", False, _first_line(exc), "start Redis (systemctl status redis-server)")
    from django.conf import settings

    return Check("cache", True, settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1])


def worker() -> Check:
    """The course worker (course/worker.py): alive when its heartbeat is recent."""
    import datetime as _dt

    from django.utils import timezone

    from course.models import Worker

    hint = "start the course worker (systemctl start cfps-worker, or ./run.sh)"
    try:
        last = Worker.objects.order_by("-seen_at").values_list("name", "seen_at").first()
    except Exception as exc:  # the database's own check names it
        return Check("worker", False, _first_line(exc), hint)
    if last is None:
        return Check("worker", False, "never started", hint)
    name, seen = last
    age = (timezone.now() - seen) / _dt.timedelta(seconds=1)
    if age > Worker.ALIVE_SECONDS:
        return Check("worker", False, f"{name}: last seen {age:.0f} s ago", hint)
    return Check("worker", True, f"{name}: seen {age:.0f} s ago")


# --- outside Django -----------------------------------------------------------------------------------
def http(name: str, url: str, hint: str, headers: dict | None = None) -> tuple[Check, object]:
    """GET `url`: ok on 200; returns the check and the JSON body (or None)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        return Check(name, False, f"{url}: HTTP {exc.code}", hint), None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, False, f"{url}: {reason}", hint), None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return Check(name, True, f"{url}: 200"), data


def portal(url: str) -> Check:
    check, data = http("portal", url, "start the portal (systemctl status cfps-portal, or ./run.sh)")
    if check.ok and isinstance(data, dict):
        return Check("portal", True, f"{url}: {', '.join(f'{k} {v}' for k, v in data.items())}")
    return check


def hub(api_url: str) -> Check:
    check, data = http("hub API", api_url + "/", "start the hub (systemctl status cfps-hub, or ./run.sh)")
    if check.ok and isinstance(data, dict) and "version" in data:
        return Check("hub API", True, f"{api_url}: JupyterHub {data['version']}")
    return check


def proxy(api_url: str, token: str) -> Check:
    hint = "the hub starts its proxy: restart the hub (systemctl restart cfps-hub)"
    check, data = http("proxy", api_url + "/api/routes", hint, {"Authorization": f"token {token}"})
    if check.ok and isinstance(data, dict):
        return Check("proxy", True, f"{api_url}: {len(data)} routes")
    return check


def docker(image: str, required: bool) -> list[Check]:
    """The engine and the notebook image; `required` False (local spawner) turns an absent engine into ok."""
    engine = shutil.which("docker")
    try:
        if not engine:
            raise FileNotFoundError("the docker command is missing")
        result = subprocess.run(
            [engine, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=TIMEOUT
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no answer")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        if not required:
            return [Check("docker", True, f"not used (SPAWNER=local; {_first_line(exc)})")]
        return [Check("docker", False, _first_line(exc), "start the engine: systemctl start docker")]
    checks = [Check("docker", True, f"engine {result.stdout.strip()}")]
    inspect = subprocess.run([engine, "image", "inspect", image], capture_output=True, text=True, timeout=TIMEOUT)
    if inspect.returncode == 0:
        checks.append(Check("image", True, image))
    else:
        checks.append(Check("image", False, f"{image} is missing", "sudo .venv/bin/python manage.py build_image"))
    return checks


def docker_root() -> Path | None:
    engine = shutil.which("docker")
    if not engine:
        return None
    try:
        result = subprocess.run(
            [engine, "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None


def dataset(config, sample: Path) -> Check:
    """The notebooks' dataset: the embedded sample file, or a login with the read-only account."""
    if config.embedded:
        try:
            with sqlite3.connect(f"file:{sample}?mode=ro", uri=True) as db:
                tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.Error as exc:
            hint = "./run.sh writes it at every start; with Docker: sudo .venv/bin/python manage.py setup_volumes"
            return Check("dataset", False, f"{sample}: {exc}", hint)
        return Check("dataset", True, f"embedded sample, {tables} tables")
    import MySQLdb

    account = config.read_only
    try:
        conn = MySQLdb.connect(**account.connect_kwargs(), connect_timeout=TIMEOUT)
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()")
            tables = cursor.fetchone()[0]
        finally:
            conn.close()
    except MySQLdb.Error as exc:
        return Check(
            "dataset", False, f"{account.masked()}: {_first_line(exc)}", "python manage.py provision_dataset_user"
        )
    return Check("dataset", True, f"{account.masked()}: {tables} tables")


def disk(name: str, path: Path) -> Check:
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return Check(name, False, f"{path}: {exc.strerror}", f"create {path} or fix CFPS_VAR_DIR")
    free_gb, fraction = usage.free / 1024**3, usage.free / usage.total if usage.total else 0
    detail = f"{path}: {free_gb:.1f} GB free ({fraction:.0%})"
    if usage.free < MIN_FREE_BYTES or fraction < MIN_FREE_FRACTION:
        return Check(name, False, detail, "free space: old backups, docker image prune, users' large files")
    return Check(name, True, detail)


def certificate(path: Path, now: dt.datetime | None = None) -> Check:
    from cryptography import x509

    now = now or dt.datetime.now(dt.UTC)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("certificate", False, f"{path}: {_first_line(exc)}", "certbot certificates; certbot renew")
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    detail = f"{path}: expires {cert.not_valid_after_utc:%Y-%m-%d} ({days:.0f} days)"
    if days < CERT_WARN_DAYS:
        return Check("certificate", False, detail, "certbot renew (is certbot.timer enabled?)")
    return Check("certificate", True, detail)
