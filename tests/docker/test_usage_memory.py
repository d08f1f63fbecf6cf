"""The staff usage page with the Docker spawner: the memory each student's container uses, as the engine
reports it to the hub (hubconfig/memory.py), shown by a portal that cannot reach the engine at all, as with
the production units (cfps-hub has the Docker socket, cfps-portal has not), without waiting long."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.docker.conftest import RUN, prepared_stack
from tests.e2e import flows
from tests.live import REPO

NO_ENGINE = f"unix:///nonexistent/{RUN}/docker.sock"


@pytest.fixture(scope="module")
def portal_without_docker(tmp_path_factory, notebook_image):
    stack = prepared_stack(tmp_path_factory.mktemp("memory-stack"), "mem")
    stack.portal.server_env = {"DOCKER_HOST": NO_ENGINE}  # gunicorn only; the hub keeps the engine
    with stack as running:
        yield running


def _row(html: str, username: str) -> str:
    match = re.search(rf'<tr data-username="{re.escape(username)}">(.*?)</tr>', html, re.S)
    assert match, html[:3000]
    return match.group(1)


def test_the_portal_process_here_really_has_no_docker_engine(portal_without_docker):
    environ = open(f"/proc/{portal_without_docker.portal.proc.pid}/environ", "rb").read().split(b"\0")
    assert f"DOCKER_HOST={NO_ENGINE}".encode() in environ
    probe = subprocess.run(
        [sys.executable, "-c", "import docker; docker.from_env(timeout=5).ping()"],
        cwd=REPO,
        env={**portal_without_docker.env, "DOCKER_HOST": NO_ENGINE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0, "the portal's environment reaches a Docker engine"


def test_usage_page_shows_the_memory_of_each_running_container(portal_without_docker, docker_client):
    stack = portal_without_docker
    student, teacher = f"mem-{RUN}", f"memt-{RUN}"
    client = flows.new_client(stack)
    staff_client = flows.new_client(stack)
    try:
        flows.signup(stack, client, student)
        flows.hub_login(stack, client, student)
        flows.wait_for_lab(stack, client, student, client.get(f"/jupyter/hub/spawn/{student}"))
        assert docker_client.containers.get(f"jupyter-{student.replace('-', '-2d')}").status == "running"

        flows.create_user(stack, teacher, staff=True, superuser=True)
        flows.portal_login(stack, staff_client, teacher)
        started = time.monotonic()
        page = staff_client.get("/admin/usage/")  # the first load makes the hub ask the engine (nothing cached)
        elapsed = time.monotonic() - started
        assert page.status_code == 200
        assert elapsed < 2.0, f"{elapsed:.2f}s"
        assert 'data-testid="memory-problem"' not in page.text, page.text[:3000]
        row = _row(page.text, student)
        memory = re.findall(r'<td class="memory">(.*?)</td>', row, re.S)[0]
        assert re.fullmatch(r"\d+(\.\d+)?\s*(MB|KB|GB)", memory.replace("\xa0", " ")), row

        # The same figure as `docker stats` (usage minus the inactive page cache), give or take what the
        # server allocated in between.
        answer = flows.hub_api(stack, "/cfps/memory").json()
        assert answer["source"] == "docker" and answer["problem"] == ""
        stats = docker_client.containers.get(f"jupyter-{student.replace('-', '-2d')}").stats(stream=False)
        expected = stats["memory_stats"]["usage"] - stats["memory_stats"]["stats"].get("inactive_file", 0)
        assert abs(answer["memory"][student] - expected) < 64 * 1024**2, (answer, expected)
    finally:
        client.close()
        staff_client.close()
