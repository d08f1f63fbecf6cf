"""Fixtures for the operations tests: the real Docker engine (for volumes), the real MariaDB (for the
MariaDB dump), each skipped without the service (a failure when CI=true: tests/conftest.py).

Everything a session makes (users, groups, volumes, scratch databases) carries RUN in its name; clean-up
removes exactly that."""

from __future__ import annotations

import logging
import secrets
import subprocess

import pytest

from tests.e2e import flows
from tests.ops.services import OwnDockerEngine

RUN = secrets.token_hex(3)
IMAGE = "cfps-notebook:latest"

# One INFO line per request would bury a failure's own message.
logging.getLogger("httpx").setLevel(logging.WARNING)


def docker(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], input=input, capture_output=True, check=check, timeout=120)


@pytest.fixture(scope="session")
def docker_engine():
    """The engine and the notebook image; removes this session's volumes afterwards."""
    try:
        result = docker("image", "inspect", IMAGE, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no Docker engine ({exc}): install docker.io and start dockerd (./test.sh does both)")
    if result.returncode != 0:
        pytest.skip(f"no image {IMAGE}: {result.stderr.decode().strip()} (run python manage.py build_image)")
    yield
    names = docker("volume", "ls", "-q", "--filter", f"name={RUN}").stdout.decode().split()
    if names:
        docker("volume", "rm", "-f", *names, check=False)


def docker_hub_env(**overrides: str) -> dict[str, str]:
    """A Stack's environment for the Docker spawner: host networking (every connection stays on 127.0.0.1),
    this session's own shared volumes, small limits, no idle culler."""
    return {
        "INVITE_CODES": flows.INVITE_CODE,
        "SPAWNER": "docker",
        "DOCKER_NETWORK": "host",
        "DOCKER_IMAGE": IMAGE,
        "DOCKER_DATA_VOLUME": f"cfps-ops-{RUN}-data",
        "DOCKER_TEAM_VOLUME": f"cfps-ops-{RUN}-team",
        "MEM_LIMIT": "512M",
        "HUB_IDLE_TIMEOUT_SECONDS": "0",
        **overrides,
    }


@pytest.fixture(scope="session")
def own_docker_engine(tmp_path_factory, docker_engine):
    """A Docker engine of the session's own with the notebook image (tests/ops/services.py OwnDockerEngine),
    for the tests that stop or restart the engine."""
    with OwnDockerEngine(tmp_path_factory.mktemp("own-engine")) as engine:
        engine.load_image(IMAGE)
        yield engine


def volume_write(volume: str, path: str, text: str) -> None:
    """Write a file into a volume as the notebook user's (uid 1000) own, as in a student's container."""
    script = f'mkdir -p "$(dirname /v/{path})" && cat > /v/{path} && chown -R 1000:100 /v'
    docker("run", "--rm", "-i", "--network", "none", "--user", "0", "-v", f"{volume}:/v",
           "--entrypoint", "sh", IMAGE, "-c", script, input=text.encode())  # fmt: skip


def volume_read(volume: str, path: str) -> str:
    return docker("run", "--rm", "--network", "none", "-v", f"{volume}:/v:ro", "--entrypoint", "cat", IMAGE,
                  f"/v/{path}").stdout.decode()  # fmt: skip


def volume_owner(volume: str, path: str) -> str:
    return docker("run", "--rm", "--network", "none", "-v", f"{volume}:/v:ro", "--entrypoint", "stat", IMAGE,
                  "-c", "%u:%g", f"/v/{path}").stdout.decode().strip()  # fmt: skip
