"""The idle culler stops a container nobody uses (its own stack: a short HUB_IDLE_TIMEOUT_SECONDS would stop
the other tests' servers mid-test)."""

from __future__ import annotations

import docker

from tests.docker.conftest import RUN, prepared_stack
from tests.docker.inside import container_of, log_in_and_spawn, server_state
from tests.e2e import flows

IDLE_TIMEOUT = 15
CULL_EVERY = 5


def test_culler_stops_an_idle_server_and_its_container_is_removed(tmp_path, docker_client, notebook_image):
    with prepared_stack(
        tmp_path, "cull", HUB_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT), HUB_CULL_EVERY_SECONDS=str(CULL_EVERY)
    ) as stack:
        username = f"ds{RUN}-idle"
        flows.create_user(stack, username)
        log_in_and_spawn(stack, username)
        container = container_of(docker_client, username)

        def culled():
            if server_state(stack, username) is not None:
                return False
            try:
                container.reload()
            except docker.errors.NotFound:
                return True
            return False

        assert flows.wait_until(culled, IDLE_TIMEOUT + 6 * CULL_EVERY + 30, interval=1), flows.explain(
            stack, f"{username}'s idle server still runs {IDLE_TIMEOUT + 6 * CULL_EVERY + 30} s after it started"
        )
