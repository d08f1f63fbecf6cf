"""The Docker engine restarts while students work (an upgrade of docker.io, a crash of dockerd), and the
containers stop with it. The hub stays up while the engine is away, keeps each server as it was (it cannot
tell), and tells a student who asks for a server that the engine does not answer; at its first poll of the
spawner after the engine is back (JupyterHub's Spawner.poll_interval: 30 s shipped, 5 s here) it marks the server stopped, and
the student starts again, with the same home volume and her files in it.

The engine is the test's own (OwnDockerEngine, tests/ops/services.py): the machine's is never stopped."""

from __future__ import annotations

import contextlib
from http import HTTPStatus

from tests.docker.inside import container_of, server_api, server_state
from tests.e2e import flows
from tests.live import Stack
from tests.ops.conftest import RUN, docker_hub_env
from tests.ops.test_hub_restart import xsrf_token

# The hub polls each server every Spawner.poll_interval (30 s shipped, +10 % jitter); this stack's hub every 5 s,
# and the test waits for a few polls.
POLL_INTERVAL = 5
POLL_WAIT = 4 * POLL_INTERVAL


def home_volume(container) -> str:
    return next(m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == "/home/jovyan")


def test_hub_survives_a_docker_engine_restart_marks_the_server_stopped_and_the_student_starts_again(
    own_docker_engine, tmp_path
):
    engine, eve, ann = own_docker_engine, f"eve-{RUN}", f"ann-{RUN}"
    stack = Stack(
        tmp_path,
        extra_env=docker_hub_env(DOCKER_HOST=engine.host),
        hub_args=(f"--Spawner.poll_interval={POLL_INTERVAL}",),
    )
    stack.manage("setup_volumes")
    with stack, flows.new_client(stack) as client, flows.new_client(stack) as other:
        docker = engine.client()
        try:
            flows.signup(stack, client, eve)
            flows.hub_login(stack, client, eve)
            flows.wait_for_lab(stack, client, eve, client.get(stack.url("/jupyter/")))
            notes = stack.url(f"/jupyter/user/{eve}/api/contents/notes.txt")
            put = client.put(notes, json={"type": "file", "format": "text", "content": "written before"},
                             headers={"X-XSRFToken": xsrf_token(client)})  # fmt: skip
            assert put.status_code == HTTPStatus.CREATED, put.text
            flows.signup(stack, other, ann)  # logged in, no server
            flows.hub_login(stack, other, ann)
            before = container_of(docker, eve)
            outage_starts = stack.hub_log.stat().st_size

            engine.stop()
            # The hub answers and keeps eve's server: it cannot ask the engine whether it still runs.
            assert server_state(stack, eve)["ready"], flows.explain(stack, "the hub dropped the server blindly")
            lab = client.get(f"/jupyter/user/{eve}/api/status")
            assert lab.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            # A start request polls the spawner at once: the server is kept, nothing crashes.
            again = server_api(stack, "POST", eve)
            assert again.status_code == HTTPStatus.BAD_REQUEST and "already running" in again.text, again.text
            # ann asks for a server: a page that says why, not "Unhandled error".
            page = other.get("/jupyter/hub/spawn")
            assert page.status_code == HTTPStatus.SERVICE_UNAVAILABLE, page.text[-2000:]
            assert "The Docker engine does not answer" in page.text and "Traceback" not in page.text
            page = other.get("/jupyter/hub/spawn", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
            assert page.status_code == HTTPStatus.SERVICE_UNAVAILABLE and "Docker 引擎暂时没有响应" in page.text
            assert stack.hub_proc.poll() is None, "the hub died while the engine was away"
            with open(stack.hub_log, "rb") as log:
                outage = log.read()[outage_starts:].decode(errors="replace")
            assert "Cannot poll" in outage and "Traceback" not in outage, outage

            engine.start()  # the same data: containers, volumes and images as they were
            stopped = flows.wait_until(lambda: server_state(stack, eve) is None, POLL_WAIT)
            assert stopped, flows.explain(stack, "the hub's poll did not notice that the engine stopped the server")
            assert f"User {eve} server stopped" in stack.hub_log.read_text(errors="replace")

            flows.wait_for_lab(stack, client, eve, client.get(stack.url("/jupyter/")))
            assert client.get(notes).json()["content"] == "written before"
            after = container_of(docker, eve)
            assert after.id != before.id and home_volume(after) == home_volume(before)
            flows.wait_for_lab(stack, other, ann, other.get(stack.url("/jupyter/")))  # ann's server starts now
            assert stack.hub_proc.poll() is None
        finally:
            if engine.dockerd is None:
                engine.start()  # the session's other tests get a running engine
            for username in (eve, ann):
                with contextlib.suppress(Exception):
                    server_api(stack, "DELETE", username)
            docker.close()
