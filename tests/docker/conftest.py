"""Fixtures for the tests against the real Docker engine: the notebook image (built once with
`manage.py build_image`, as an operator would; ./test.sh builds it before pytest so its progress shows, and
then this finds it in a second), a Docker SDK client, and clean-up.

`docker_stack` is the whole system as ./run.sh runs it (tests/live.py Stack) with SPAWNER=docker,
shared by the session's tests: DOCKER_NETWORK=host, so every connection stays on 127.0.0.1, small limits, the
idle culler off (test_culler.py has its own stack), its own volumes made by setup_volumes.

Every container, volume, user and group a session makes carries RUN in its name, so parallel runs never
clash, and the clean-up removes exactly what this session made. Without a Docker engine the tests are
skipped, or FAIL when CI=true.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from portal.config.table import BY_NAME
from tests.e2e import flows
from tests.live import REPO, Stack

RUN = secrets.token_hex(3)
IMAGE = BY_NAME["DOCKER_IMAGE"].default_for("dev")
BUILD_TIMEOUT = 1800
MEM_LIMIT = "512M"
# Small enough that the fork test reaches it quickly, large enough for JupyterLab and a kernel (~20 tasks here).
PIDS_LIMIT = 160
# Enforced only where the engine can (xfs with pquota); elsewhere the hub says so and servers start anyway.
DISK_QUOTA = "1G"
GROUP_MEM = 768 * 1024**2
GROUP_CPUS = 0.5
COMMON_GROUP = f"class-{RUN}"
ONLY_A_GROUP = f"研究组-{RUN}"  # Chinese group names are common; the folder keeps the name
EXAMPLE = f"example-{RUN}.ipynb"
EXAMPLE_TEXT = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _engine():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        message = (
            f"the Docker engine does not answer ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): "
            "install docker.io and start dockerd (./test.sh does both)"
        )
        pytest.skip(message)
    return client


def remove_what_this_run_made(client) -> None:
    """Listed by the engine's name filter and removed by id: `containers.list()` inspects every container on the
    engine, and one that another worker (or Docker, for a stopped server's `--rm` container) removes meanwhile
    failed the whole run's teardown with a 404. Gone already is what this wants."""
    import docker

    api = client.api
    removals = [
        *((api.remove_container, c["Id"], {"force": True}) for c in api.containers(all=True, filters={"name": RUN})),
        *((api.remove_volume, v["Name"], {"force": True}) for v in api.volumes(filters={"name": RUN})["Volumes"] or []),
        *((api.remove_network, n["Id"], {}) for n in api.networks(filters={"name": RUN})),
    ]
    for remove, what, options in removals:
        try:
            remove(what, **options)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="session")
def docker_client():
    client = _engine()
    yield client
    remove_what_this_run_made(client)
    client.close()


def manage_in_repo(*args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    """`manage.py <args>` with the repository's own var/ (where the image build caches its work) and no .env."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CFPS_VAR_DIR", "DOCKER_"))}
    env.update(CFPS_ENV_FILE="/dev/null", **extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def notebook_image(docker_client) -> str:
    result = manage_in_repo("build_image", timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        pytest.fail(f"manage.py build_image failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
    return IMAGE


def docker_env(tag: str, **overrides: str) -> dict[str, str]:
    return {
        "INVITE_CODES": flows.INVITE_CODE,
        "SPAWNER": "docker",
        "DOCKER_NETWORK": "host",
        "DOCKER_IMAGE": IMAGE,
        "DOCKER_DATA_VOLUME": f"cfps-test-{RUN}-{tag}-data",
        "DOCKER_TEAM_VOLUME": f"cfps-test-{RUN}-{tag}-team",
        "MEM_LIMIT": MEM_LIMIT,
        "CPU_LIMIT": "1",
        "GROUP_LIMITS": f"{ONLY_A_GROUP}:768M:{GROUP_CPUS}",
        "PIDS_LIMIT": str(PIDS_LIMIT),
        "USER_DISK_QUOTA": DISK_QUOTA,
        "HUB_IDLE_TIMEOUT_SECONDS": "0",
        **overrides,
    }


def prepared_stack(tmp_path, tag: str, **overrides: str) -> Stack:
    """A Stack (not started yet) spawning containers, its volumes made by setup_volumes and one extra example
    notebook in the data folder (the repository's notebooks/ may be empty)."""
    stack = Stack(tmp_path, extra_env=docker_env(tag, **overrides))
    stack.manage("setup_volumes")
    (tmp_path / "var" / "volumes" / "data" / "notebooks" / EXAMPLE).write_text(EXAMPLE_TEXT)
    return stack


@pytest.fixture(scope="session")
def docker_stack(tmp_path_factory, notebook_image):
    with prepared_stack(tmp_path_factory.mktemp("docker-stack"), "spawn") as running:
        yield running
