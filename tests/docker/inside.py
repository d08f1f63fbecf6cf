"""What the container tests do to a running stack and to the users' containers: plain functions, as
tests/e2e/flows.py is for the login flows."""

from __future__ import annotations

import httpx
from dockerspawner import DockerSpawner

from tests.e2e import flows


def container_of(client, username: str):
    """The user's container, by DockerSpawner's default name (`jupyter-<escaped username>`)."""
    return client.containers.get("jupyter-" + DockerSpawner._escape(username))


def sh(client, username: str, script: str) -> tuple[int, str]:
    """Run `script` with sh in the user's container as the container's user; (exit code, stdout+stderr)."""
    result = container_of(client, username).exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode("utf-8", "replace").strip()


def server_api(stack, method: str, username: str) -> httpx.Response:
    """Start (POST) or stop (DELETE) a user's server as the portal service does (scope `servers`)."""
    return httpx.request(
        method,
        f"{stack.hub_api_url}/users/{username}/server",
        headers={"Authorization": f"token {stack.hub_admin_token()}"},
        trust_env=False,
        timeout=60,
    )


def server_state(stack, username: str) -> dict | None:
    """The hub's model of the user's default server, None when it is not running."""
    response = flows.hub_api(stack, f"/users/{username}")
    assert response.status_code == 200, response.text
    return response.json()["servers"].get("")


def log_in_and_spawn(stack, username: str) -> None:
    """Log in through the portal (OAuth) and open /jupyter/ until JupyterLab answers, like a browser."""
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, username)
        flows.wait_for_lab(stack, client, username, client.get("/jupyter/"))
