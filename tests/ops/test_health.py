"""`GET /healthz` and `manage.py status`: green on a healthy system, and the broken part named (with a hint)
when one is stopped. Only processes these tests started are stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from http import HTTPStatus

import httpx
import pytest
from django.test import override_settings

from tests.live import REPO, PortalProcess, Stack
from tests.ops.services import OwnRedis


def status(system) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "status"], cwd=REPO, env=system.env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def lines_by_part(output: str) -> dict[str, str]:
    """{"hub API": "FAIL", ...} from status's output (hint lines start with spaces)."""
    parts = {}
    for line in output.splitlines():
        if line[:4] in ("ok  ", "FAIL"):
            name = line[6:].split("  ")[0].strip()
            parts[name] = line[:4].strip()
    return parts


def test_healthz_answers_without_login_or_cookie_and_names_a_stopped_worker(tmp_path):
    with PortalProcess(tmp_path, worker=True) as portal:
        response = httpx.get(portal.url("/healthz"), trust_env=False, timeout=10)
        portal.supervisor.stop([portal.worker])
        Worker = "from course.models import Worker; from django.utils import timezone; import datetime as dt; "
        portal.manage("shell", "-c", Worker + "Worker.objects.update(seen_at=timezone.now() - dt.timedelta(minutes=1))")
        stopped = httpx.get(portal.url("/healthz"), trust_env=False, timeout=10)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"database": "ok", "cache": "ok", "worker": "ok"}
    assert stopped.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert stopped.json() == {"database": "ok", "cache": "ok", "worker": "fail"}
    assert "set-cookie" not in response.headers  # no session, no CSRF cookie
    assert "no-cache" in response.headers["cache-control"]


def test_healthz_names_the_cache_when_redis_is_down(client, db, tmp_path):
    from course.models import Worker

    Worker.objects.create(name="a worker")  # alive: it was just seen
    with OwnRedis(tmp_path) as redis:
        caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url,
                              "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}}  # fmt: skip
        with override_settings(CACHES=caches):
            assert client.get("/healthz").json() == {"database": "ok", "cache": "ok", "worker": "ok"}
            redis.stop()
            response = client.get("/healthz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert json.loads(response.content) == {"database": "ok", "cache": "fail", "worker": "ok"}


@pytest.fixture(scope="module")
def healthy_stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("status"), worker=True) as stack:
        sample = stack.manage("shell", "-c", "from django.conf import settings; print(settings.DATASET_SAMPLE_PATH)")
        stack.manage("load_sample_data", "--sqlite", sample.stdout.strip().splitlines()[-1])
        yield stack


def test_status_is_green_on_a_healthy_system(healthy_stack):
    result = status(healthy_stack)
    assert result.returncode == 0, result.stdout + result.stderr
    parts = lines_by_part(result.stdout)
    expected = {
        "portal",
        "database",
        "cache",
        "worker",
        "hub API",
        "proxy",
        "docker",
        "dataset",
        "disk var/",
        "certificate",
    }
    assert expected <= set(parts), result.stdout
    assert set(parts.values()) == {"ok"}, result.stdout


def test_status_names_the_hub_and_the_portal_when_they_are_stopped(healthy_stack):
    hub = healthy_stack.hub_proc
    hub.terminate()  # the hub this test's stack started (it stops its proxy too)
    hub.wait(timeout=30)
    result = status(healthy_stack)
    parts = lines_by_part(result.stdout)
    assert result.returncode == 1 and parts["hub API"] == "FAIL" and parts["portal"] == "ok", result.stdout
    assert "-> start the hub" in result.stdout
    assert "not well: hub API" in result.stderr

    healthy_stack.portal.stop()
    result = status(healthy_stack)
    parts = lines_by_part(result.stdout)
    assert result.returncode == 1 and parts["portal"] == "FAIL", result.stdout
    assert "-> start the portal" in result.stdout


def self_signed(folder, days: int):
    """A certificate valid for `days` more days (PEM file), made with `cryptography`."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.example.edu.cn")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256())
    )  # fmt: skip
    path = folder / f"cert-{days}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(("days", "well"), [(60, True), (5, False)])
def test_status_fails_on_a_certificate_that_expires_within_two_weeks(tmp_path, days, well):
    from deploy import health

    check = health.certificate(self_signed(tmp_path, days))
    assert check.ok is well, check
    assert "expires" in check.detail and (well or "certbot renew" in check.hint)


def test_status_names_an_unreadable_certificate(tmp_path):
    from deploy import health

    (tmp_path / "broken.pem").write_text("not a certificate")
    check = health.certificate(tmp_path / "broken.pem")
    assert not check.ok and "broken.pem" in check.detail
