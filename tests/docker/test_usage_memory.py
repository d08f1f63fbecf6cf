"""The staff usage page with the Docker spawner: the memory each student's container uses, as the engine
reports it, without the page waiting on the engine for long."""

from __future__ import annotations

import re
import time

from tests.docker.conftest import RUN
from tests.e2e import flows


def _row(html: str, username: str) -> str:
    match = re.search(rf'<tr data-username="{re.escape(username)}">(.*?)</tr>', html, re.S)
    assert match, html[:3000]
    return match.group(1)


def test_usage_page_shows_the_memory_of_each_running_container(docker_stack, docker_client):
    student, teacher = f"mem-{RUN}", f"memt-{RUN}"
    client = flows.new_client(docker_stack)
    staff_client = flows.new_client(docker_stack)
    try:
        flows.signup(docker_stack, client, student)
        flows.hub_login(docker_stack, client, student)
        flows.wait_for_lab(docker_stack, client, student, client.get(f"/jupyter/hub/spawn/{student}"))
        assert docker_client.containers.get(f"jupyter-{student.replace('-', '-2d')}").status == "running"

        flows.create_user(docker_stack, teacher, staff=True, superuser=True)
        flows.portal_login(docker_stack, staff_client, teacher)
        started = time.monotonic()
        page = staff_client.get("/admin/usage/")  # the first load asks the engine (nothing cached yet)
        elapsed = time.monotonic() - started
        assert page.status_code == 200
        assert elapsed < 2.0, f"{elapsed:.2f}s"
        row = _row(page.text, student)
        assert re.search(r"\d+(\.\d+)?\s*(MB|KB|GB)", row), row
        assert "—" not in re.findall(r"<td>(.*?)</td>", row, re.S)[6]  # the memory column
    finally:
        client.close()
        staff_client.close()
