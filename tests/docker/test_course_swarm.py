"""The course on a one-node swarm with SWARM_VOLUMES=shared: homes are folders under DATA_ROOT/volumes/, reached
by the worker through helper containers (as in production, where it is not root). A student's running swarm
task sees new material within seconds; 提交 on the portal takes the folder from the shared storage.

The swarm comes from test_swarm.py's fixture (joined for this module only, and left as it was)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from portal.config import containers
from portal.config.swarm import VOLUMES_FOLDER
from tests.docker.conftest import RUN, docker_env
from tests.docker.test_swarm import swarm  # noqa: F401 (the fixture)
from tests.e2e import flows
from tests.live import Stack


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory, notebook_image, swarm):  # noqa: F811
    env = docker_env("cswarm", SPAWNER="swarm", SWARM_VOLUMES="shared", COURSE_HOME_ACCESS="container")
    with Stack(tmp_path_factory.mktemp("course-swarm"), extra_env=env, worker=True) as stack:
        stack.manage("setup_volumes")
        yield stack


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_material_and_hand_ins_on_shared_swarm_homes(shared_stack, docker_client):
    stack = shared_stack
    name = f"sw{RUN}-eve"
    client = flows.new_client(stack)
    flows.signup(stack, client, name)
    group = f"swarm-class-{RUN}"
    script = (
        "import io, zipfile, datetime as dt\n"
        "from django.utils import timezone\n"
        "from django.contrib.auth.models import Group\n"
        "from accounts.models import User\n"
        "from course import bundles, jobs\n"
        "from course.models import Material, Assignment\n"
        "def z(files):\n"
        "    b = io.BytesIO(); a = zipfile.ZipFile(b, 'w'); [a.writestr(k, v) for k, v in files.items()]; a.close()\n"
        "    return bundles.from_zip(io.BytesIO(b.getvalue()))\n"
        f"g = Group.objects.get_or_create(name={group!r})[0]; User.objects.get(username={name!r}).groups.add(g)\n"
        "m = Material.objects.create(title='第七周'); m.groups.add(g); jobs.hand_out(m, z({'w7.md': 'seven'}))\n"
        "now = timezone.now()\n"
        "a = Assignment.objects.create(title='作业四', release_at=now, due_at=now + dt.timedelta(hours=1)); a.groups.add(g)\n"
        "jobs.hand_out(a, z({'hw4.md': 'todo'})); print(a.pk)\n"
    )
    flows.wait_for_lab(stack, client, name, client.get(f"/jupyter/hub/spawn/{name}"))
    home = Path(stack.env["CFPS_VAR_DIR"]) / "volumes" / VOLUMES_FOLDER / containers.user_volume(name)
    assert home.is_dir(), f"the swarm home is not the shared folder {home}"
    started = time.monotonic()
    assignment_id = int(stack.manage("shell", "-c", script).stdout.split()[-1])
    api = f"/jupyter/user/{name}/api/contents/"
    seen = wait(lambda: (r := client.get(api + "course/第七周/w7.md")).status_code == 200 and r.json(), 60,
                "the material in the running swarm task")  # fmt: skip
    assert seen["content"] == "seven" and time.monotonic() - started < 60
    assert (home / "course" / "第七周" / "w7.md").stat().st_uid == containers.NOTEBOOK_UID
    wait(lambda: client.get(api + "assignments/作业四/hw4.md").status_code == 200, 60, "the assignment")
    server = f"/jupyter/user/{name}/"
    xsrf = [c.value for c in client.cookies.jar if c.name == "_xsrf" and server.startswith(c.path)][-1]
    body = json.dumps({"type": "file", "format": "text", "content": "done on the swarm"})
    assert client.put(api + "assignments/作业四/hw4.md", content=body, headers={"X-XSRFToken": xsrf}).status_code == 200
    page = client.get("/course/")
    client.post(f"/course/{assignment_id}/hand-in/", data={"csrfmiddlewaretoken": flows.csrf_token(client, page.text)},
                headers={"Referer": str(page.url)})  # fmt: skip
    handins = Path(stack.env["CFPS_VAR_DIR"]) / "course" / "handins" / str(assignment_id)
    stored = wait(lambda: list(handins.glob("*/hw4.md")), 60, "the hand-in from the shared home")
    assert stored[0].read_text() == "done on the swarm"
    client.close()
