"""The course worker as a process of its own, as run.sh and systemd run it: killed with SIGKILL in the middle of a
class's hand-out, started again, it finishes the job, and every home ends up exactly as if nothing happened.
Then a live stack on the local spawner: a student's running JupyterLab sees new material within seconds
(through its contents API, no restart), and 提交 on the portal page ends in a hand-in."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e import flows
from tests.live import PortalProcess, Stack

STUDENTS = 30
FILES = 120


def counts(portal: PortalProcess) -> dict[str, int]:
    with sqlite3.connect(portal.tmp_path / "portal.sqlite3", timeout=20) as db:
        return dict(db.execute("SELECT status, count(*) FROM course_jobitem GROUP BY status").fetchall())


def wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


SETUP = """
import io, zipfile
from pathlib import Path
from django.contrib.auth.models import Group
from accounts.models import User
from course import bundles, jobs
from course.models import Material
from portal.config.env import var_dir
group = Group.objects.create(name="class-a")
for n in range({students}):
    user = User.objects.create_user(username=f"s{{n:02d}}", password="x-Cfps-2026")
    user.groups.add(group)
    home = var_dir() / "users" / user.username
    home.mkdir(parents=True)
    (home / ".bashrc").write_text("#")
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    for n in range({files}):
        archive.writestr(f"第{{n:03d}}节/notes.md", bytes([n % 256]) * 20000)
handout = Material.objects.create(title="第三周")
handout.groups.add(group)
jobs.hand_out(handout, bundles.from_zip(io.BytesIO(buffer.getvalue()), "w3.zip"))
"""


def test_a_worker_killed_mid_job_finishes_it_after_a_restart_and_homes_are_as_if_nothing_happened(tmp_path):
    with PortalProcess(tmp_path, extra_env={"SPAWNER": "local"}, worker=True) as portal:
        worker = portal.worker
        portal.manage("shell", "-c", SETUP.format(students=STUDENTS, files=FILES))
        wait(lambda: counts(portal).get("done", 0) >= 3, 60, "the first students are done")
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        killed_at = counts(portal)
        assert killed_at.get("running", 0) <= 1 and killed_at.get("done", 0) < STUDENTS, killed_at
        portal.start_worker(after_death=True)
        wait(lambda: counts(portal).get("done", 0) == STUDENTS, 180, f"all {STUDENTS} students done")
        assert counts(portal) == {"done": STUDENTS}
    homes = tmp_path / "var" / "users"
    for n in range(STUDENTS):
        folder = homes / f"s{n:02d}" / "course" / "第三周"
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == [f"第{k:03d}节/notes.md" for k in range(FILES)], f"s{n:02d}"
        assert (folder / "第007节" / "notes.md").read_bytes() == bytes([7]) * 20000
    assert not list(homes.rglob(".cfps-tmp-*")), "a half-written file was left in a home"
    assert not list(homes.rglob("*.new*")), "the restarted worker took its own files for the students'"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    with Stack(
        tmp_path_factory.mktemp("course-local"), worker=True, extra_env={"INVITE_CODES": flows.INVITE_CODE}
    ) as stack:
        yield stack


def test_a_running_server_sees_new_material_within_seconds_and_a_hand_in_from_the_page_is_taken(local_stack):
    stack = local_stack
    name = flows.unique_username("lab")
    client = flows.new_client(stack)
    flows.signup(stack, client, name)
    stack.manage("shell", "-c", f"from django.contrib.auth.models import Group; from accounts.models import User; "
                 f"User.objects.get(username={name!r}).groups.add(Group.objects.get_or_create(name='class-l')[0])")  # fmt: skip
    flows.wait_for_lab(stack, client, name, client.get("/jupyter/hub/spawn/" + name))
    api = f"/jupyter/user/{name}/api/contents/"
    server = f"/jupyter/user/{name}/"
    tokens = [c.value for c in client.cookies.jar if c.name == "_xsrf" and server.startswith(c.path)]
    xsrf = {"X-XSRFToken": tokens[-1] if tokens else ""}
    script = (
        "import io, zipfile, datetime as dt\n"
        "from django.utils import timezone\n"
        "from django.contrib.auth.models import Group\n"
        "from course import bundles, jobs\n"
        "from course.models import Material, Assignment\n"
        "def z(files):\n"
        "    b = io.BytesIO(); a = zipfile.ZipFile(b, 'w'); [a.writestr(k, v) for k, v in files.items()]; a.close()\n"
        "    return bundles.from_zip(io.BytesIO(b.getvalue()))\n"
        "g = Group.objects.get(name='class-l')\n"
        "m = Material.objects.create(title='第四周'); m.groups.add(g)\n"
        'jobs.hand_out(m, z({\'w4.ipynb\': \'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\'}))\n'
        "now = timezone.now()\n"
        "a = Assignment.objects.create(title='作业二', release_at=now, due_at=now + dt.timedelta(hours=1)); a.groups.add(g)\n"
        'jobs.hand_out(a, z({\'hw2.ipynb\': \'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\'}))\n'
        "print(a.pk)\n"
    )
    started = time.monotonic()
    assignment_id = int(stack.manage("shell", "-c", script).stdout.split()[-1])
    seen = wait(
        lambda: (
            client.get(api + "course/第四周", headers=xsrf).status_code == 200
            and client.get(api + "course/第四周", headers=xsrf).json()
        ),
        30,
        "the new material in the running server's contents API",
    )
    assert [item["name"] for item in seen["content"]] == ["w4.ipynb"]
    assert time.monotonic() - started < 30
    # The student works in JupyterLab, then hands in on the portal page.
    answer = {"type": "file", "format": "text", "content": "我的答案"}
    wait(lambda: client.get(api + "assignments/作业二").status_code == 200, 30, "the assignment folder")
    saved = client.put(api + "assignments/作业二/answer.txt", content=json.dumps(answer), headers=xsrf)
    assert saved.status_code in (200, 201), saved.text
    page = client.get("/course/")
    assert "作业二" in page.text
    token = flows.csrf_token(client, page.text)
    response = client.post(
        f"/course/{assignment_id}/hand-in/", data={"csrfmiddlewaretoken": token}, headers={"Referer": str(page.url)}
    )
    assert str(response.url).endswith("/course/") and "being copied" in response.text
    done = wait(
        lambda: "answer.txt" in stack.manage("shell", "-c", "from course.models import Submission; "
                                            "print([f['path'] for s in Submission.objects.filter(status='done') for f in s.files])").stdout,
        30, "the hand-in is copied",
    )  # fmt: skip
    assert done
    stored = list((Path(stack.env["CFPS_VAR_DIR"]) / "course" / "handins" / str(assignment_id)).glob("*/answer.txt"))
    assert [p.read_text() for p in stored] == ["我的答案"]
