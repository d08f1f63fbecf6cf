"""The hub is killed (SIGKILL: no clean-up at all) while a student works in JupyterLab in a Docker
container: the container and its kernel keep running, and the hub, started again by ./run.sh's supervisor
(the one tests/live.py runs; systemd would do the same), finds the server and routes the student back to the
same kernel."""

from __future__ import annotations

import os
import signal
from http import HTTPStatus

import pytest

from tests.e2e import flows
from tests.live import Stack
from tests.ops.conftest import RUN, docker_hub_env


def xsrf_token(client) -> str:
    """JupyterLab's XSRF token (its server's `_xsrf` cookie, not the hub's)."""
    tokens = [c.value for c in client.cookies.jar if c.name == "_xsrf" and c.path.startswith("/jupyter/user/")]
    assert tokens, "JupyterLab set no _xsrf cookie"
    return tokens[-1]


def student_with_a_kernel(stack, client, username: str) -> str:
    """Sign up, log in to the hub, open JupyterLab and start a kernel, as a student does; the kernel's URL."""
    flows.signup(stack, client, username)
    flows.hub_login(stack, client, username)
    flows.wait_for_lab(stack, client, username, client.get(stack.url("/jupyter/")))
    api = stack.url(f"/jupyter/user/{username}/api/kernels")
    kernel = client.post(api, json={"name": "python3"}, headers={"X-XSRFToken": xsrf_token(client)})
    assert kernel.status_code == HTTPStatus.CREATED, kernel.text
    return f"{api}/{kernel.json()['id']}"


def assert_found_again(stack, client, username: str, kernel_url: str) -> None:
    """The restarted hub has the student's server as ready, and the student reaches the same kernel."""
    state = flows.wait_until(
        lambda: (flows.hub_api(stack, f"/users/{username}").json()["servers"].get("") or {}).get("ready"), 60
    )
    assert state, flows.explain(stack, "the restarted hub did not find the running server")
    again = flows.wait_until(lambda: client.get(kernel_url).status_code == HTTPStatus.OK, 30)
    assert again, flows.explain(stack, "the student's kernel is gone after the hub restart")


@pytest.fixture
def docker_stack(tmp_path, docker_engine):
    stack = Stack(tmp_path, extra_env=docker_hub_env())
    stack.manage("setup_volumes")
    with stack:
        yield stack


def test_containers_and_kernels_survive_a_killed_hub_and_the_restarted_hub_finds_them(docker_stack):
    import docker

    from tests.docker.inside import container_of

    stack, username = docker_stack, f"kim-{RUN}"
    engine = docker.from_env()
    with flows.new_client(stack) as client:
        kernel_url = student_with_a_kernel(stack, client, username)
        container = container_of(engine, username)
        try:
            killed = stack.hub_proc
            stack.supervisor.remember()  # what the hub started, as run.sh's supervisor notes it every half second
            os.kill(killed.pid, signal.SIGKILL)  # the hub this test's stack started
            killed.wait(timeout=10)
            container.reload()
            assert container.status == "running", "the container died with the hub"

            stack.restart_hub()  # as run.sh's supervisor does: the dead hub's proxy and culler go first
            assert stack.hub_proc.pid != killed.pid and stack.hub_proc.poll() is None
            assert ": tests starts JupyterHub again (restart 1) ===" in stack.hub_log.read_text(errors="replace")
            assert_found_again(stack, client, username, kernel_url)
            assert container_of(engine, username).id == container.id  # the same container, not a new one
        finally:
            with_server = flows.hub_api(stack, f"/users/{username}")
            if with_server.status_code == HTTPStatus.OK:
                import httpx

                httpx.delete(f"{stack.hub_api_url}/users/{username}/server", trust_env=False, timeout=60,
                             headers={"Authorization": f"token {stack.hub_admin_token()}"})  # fmt: skip
