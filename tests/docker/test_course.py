"""The course on real Docker volumes, reached only through the worker's helper containers (COURSE_HOME_ACCESS=
container, as in production, where the worker is not root): a class where one student runs JupyterLab, one has
stopped and one never started; material that the running server sees within seconds and the others find in
their volumes; a second version that keeps a student's edit; an assignment handed in on the portal page, one
collected on its own at the due time, one late; feedback returned into the home; a Docker engine that does not
answer pauses the work with the reason and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from portal.config import containers
from tests.docker.conftest import IMAGE, RUN, docker_env
from tests.docker.inside import server_api
from tests.e2e import flows
from tests.live import REPO, Stack

GROUP = f"course-{RUN}"
NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.fixture(scope="module")
def course_stack(tmp_path_factory, notebook_image):
    env = docker_env("course", COURSE_HOME_ACCESS="container", USER_DISK_QUOTA="")
    with Stack(tmp_path_factory.mktemp("course-docker"), extra_env=env, worker=True) as stack:
        stack.manage("setup_volumes")
        yield stack


def shell(stack, script: str) -> str:
    return stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def in_volume(docker_client, username: str, path: str) -> str | None:
    """A file of the student's home volume, read by a throwaway container (None when missing)."""
    script = f'cat "/h/{path}" 2>/dev/null || echo __missing__'
    out = docker_client.containers.run(
        IMAGE, ["sh", "-c", script], entrypoint=[], network_mode="none", remove=True,
        volumes={containers.user_volume(username): {"bind": "/h", "mode": "ro"}},
    ).decode()  # fmt: skip
    return None if out.strip() == "__missing__" else out


HAND_OUT = """
import io, zipfile, datetime as dt
from django.utils import timezone
from django.contrib.auth.models import Group
from course import bundles, jobs
from course.models import Handout, Material, Assignment
def z(files):
    b = io.BytesIO(); a = zipfile.ZipFile(b, "w"); [a.writestr(k, v) for k, v in files.items()]; a.close()
    return bundles.from_zip(io.BytesIO(b.getvalue()))
g = Group.objects.get(name={group!r})
"""


def contents(client, name: str, path: str):
    response = client.get(f"/jupyter/user/{name}/api/contents/{path}")
    return response.json() if response.status_code == 200 else None


def xsrf_of(client, name: str) -> dict:
    server = f"/jupyter/user/{name}/"
    tokens = [c.value for c in client.cookies.jar if c.name == "_xsrf" and server.startswith(c.path)]
    return {"X-XSRFToken": tokens[-1] if tokens else ""}


def test_a_class_on_docker_volumes_from_hand_out_to_returned_feedback(course_stack, docker_client):
    stack = course_stack
    ann, bob, cat = (f"{who}-{RUN}" for who in ("ann", "bob", "cat"))
    clients = {}
    for name in (ann, bob, cat):
        clients[name] = flows.new_client(stack)
        flows.signup(stack, clients[name], name)
    shell(stack, f"from django.contrib.auth.models import Group; from accounts.models import User; "
                 f"g = Group.objects.get_or_create(name={GROUP!r})[0]; "
                 f"[User.objects.get(username=n).groups.add(g) for n in {[ann, bob, cat]!r}]; print('ok')")  # fmt: skip
    for name in (ann, bob):  # ann keeps running; bob starts once, then stops; cat never starts
        flows.wait_for_lab(stack, clients[name], name, clients[name].get(f"/jupyter/hub/spawn/{name}"))
    assert server_api(stack, "DELETE", bob).status_code in (202, 204)

    # --- material: seen by the running server within seconds, in bob's volume, waiting for cat's home ---------
    started = time.monotonic()
    material = HAND_OUT.format(group=GROUP) + (
        "m = Material.objects.create(title='第五周'); m.groups.add(g)\n"
        f"jobs.hand_out(m, z({{'w5.ipynb': {NOTEBOOK!r}, '数据/说明.md': 'v1'}})); print(m.pk)\n"
    )
    material_id = int(shell(stack, material))

    def both_files():
        listing = contents(clients[ann], ann, "course/第五周")
        return listing if listing and len(listing["content"]) == 2 else None

    listing = wait(both_files, 60, "the material in ann's running server")
    assert sorted(item["name"] for item in listing["content"]) == ["w5.ipynb", "数据"]
    assert time.monotonic() - started < 60
    wait(
        lambda: in_volume(docker_client, bob, "course/第五周/数据/说明.md") == "v1", 60, "the material in bob's volume"
    )
    waiting = shell(stack, f"from course.models import JobItem; print(JobItem.objects.get(username={cat!r}).status)")
    assert waiting == "waiting"
    flows.wait_for_lab(stack, clients[cat], cat, clients[cat].get(f"/jupyter/hub/spawn/{cat}"))
    wait(lambda: contents(clients[cat], cat, "course/第五周/w5.ipynb"), 60, "cat's material once her home exists")

    # --- a second version keeps ann's edit: the new one arrives beside it -------------------------------------
    mine = {"type": "file", "format": "text", "content": "ann's notes"}
    put = clients[ann].put(f"/jupyter/user/{ann}/api/contents/course/第五周/数据/说明.md", content=json.dumps(mine),
                           headers=xsrf_of(clients[ann], ann))  # fmt: skip
    assert put.status_code in (200, 201), put.text
    second = HAND_OUT.format(group=GROUP) + (
        f"m = Material.objects.get(pk={material_id})\n"
        f"jobs.hand_out(m, z({{'w5.ipynb': {NOTEBOOK!r}, '数据/说明.md': 'v2'}})); print('ok')\n"
    )
    shell(stack, second)
    new = wait(lambda: contents(clients[ann], ann, "course/第五周/数据/说明.new.md"), 60, "v2 beside ann's edit")
    assert new["content"] == "v2"
    assert contents(clients[ann], ann, "course/第五周/数据/说明.md")["content"] == "ann's notes"
    wait(
        lambda: in_volume(docker_client, bob, "course/第五周/数据/说明.md") == "v2", 60, "bob's unchanged file updated"
    )
    page = clients[ann].get("/course/").text
    assert "course/第五周/数据/说明.new.md" in page

    # --- an assignment: ann hands in on the page, bob forgets (collected at the due time), cat is late -----------
    assignment = HAND_OUT.format(group=GROUP) + (
        "now = timezone.now()\n"
        "a = Assignment.objects.create(title='作业三', release_at=now, due_at=now + dt.timedelta(seconds=40),"
        " late_policy='accept', late_until=now + dt.timedelta(hours=1)); a.groups.add(g)\n"
        f"jobs.hand_out(a, z({{'hw3.ipynb': {NOTEBOOK!r}}})); print(a.pk)\n"
    )
    assignment_id = int(shell(stack, assignment))
    wait(lambda: contents(clients[ann], ann, "assignments/作业三/hw3.ipynb"), 60, "the assignment in ann's server")
    answer = {"type": "file", "format": "text", "content": "ann's answer"}
    clients[ann].put(f"/jupyter/user/{ann}/api/contents/assignments/作业三/answer.txt", content=json.dumps(answer),
                     headers=xsrf_of(clients[ann], ann))  # fmt: skip
    page = clients[ann].get("/course/")
    handed = clients[ann].post(
        f"/course/{assignment_id}/hand-in/",
        data={"csrfmiddlewaretoken": flows.csrf_token(clients[ann], page.text)},
        headers={"Referer": str(page.url)},
    )
    assert "being copied" in handed.text
    wait(lambda: in_volume(docker_client, bob, "assignments/作业三/hw3.ipynb"), 60, "the assignment in bob's volume")
    due = shell(
        stack,
        f"from course.models import Assignment; print(Assignment.objects.get(pk={assignment_id}).due_at.timestamp())",
    )
    time.sleep(max(0.0, float(due) - time.time()))
    wait(
        lambda: shell(stack, "from course.models import Job; "
                             f"print(Job.objects.filter(kind='auto_collect', handout={assignment_id}, finished_at__isnull=False).exists())") == "True",
        90, "the collection at the due time",
    )  # fmt: skip
    page = clients[cat].get("/course/")
    clients[cat].post(f"/course/{assignment_id}/hand-in/", data={"csrfmiddlewaretoken": flows.csrf_token(clients[cat], page.text)},
                      headers={"Referer": str(page.url)})  # fmt: skip
    summary = (
        f"import json; from course.models import Assignment; a = Assignment.objects.get(pk={assignment_id}); "
        "print(json.dumps({s.student.username: [s.auto_collected, s.late, sorted(f['path'] for f in s.files)] "
        "for s in a.latest_submissions().values()}))"
    )
    final = wait(lambda: (lambda d: d if len(d) == 3 and d[cat][1] else None)(json.loads(shell(stack, summary))), 60,
                 "three hand-ins, cat's late")  # fmt: skip
    assert final[ann] == [False, False, ["answer.txt", "hw3.ipynb"]]
    assert final[bob] == [True, False, ["hw3.ipynb"]]
    assert final[cat][:2] == [False, True]

    # --- feedback returned into ann's home; score and comment on her page --------------------------------------
    feedback = HAND_OUT.format(group=GROUP) + (
        "from accounts.models import User; from course.models import Grade\n"
        f"a = Assignment.objects.get(pk={assignment_id}); u = User.objects.get(username={ann!r})\n"
        "Grade.objects.create(assignment=a, student=u, score=88, comment='思路清楚')\n"
        "jobs.return_feedback(a, files={u: z({'批注.md': 'well done'})}); print('ok')\n"
    )
    shell(stack, feedback)
    returned = wait(lambda: contents(clients[ann], ann, "assignments/作业三/feedback/批注.md"), 60, "the feedback file")
    assert returned["content"] == "well done"
    page = clients[ann].get("/course/").text
    assert "思路清楚" in page and "88" in page
    for client in clients.values():
        client.close()


def test_a_docker_engine_that_does_not_answer_pauses_the_job_with_the_reason(course_stack, docker_client):
    stack = course_stack
    dan = f"dan-{RUN}"
    client = flows.new_client(stack)
    flows.signup(stack, client, dan)
    flows.wait_for_lab(stack, client, dan, client.get(f"/jupyter/hub/spawn/{dan}"))
    stack.supervisor.stop([stack.portal.worker])  # the stack's own worker stops; one with no engine takes over
    script = HAND_OUT.format(group=GROUP) + (
        "from accounts.models import User\n"
        f"g = Group.objects.get_or_create(name='solo-{RUN}')[0]; User.objects.get(username={dan!r}).groups.add(g)\n"
        "m = Material.objects.create(title='第六周'); m.groups.add(g)\n"
        "jobs.hand_out(m, z({'w6.md': 'six'})); print(m.pk)\n"
    )
    material_id = int(shell(stack, script))
    env = {**stack.env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run([sys.executable, "manage.py", "course_worker", "--until-idle"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    state = json.loads(shell(stack, "import json; from course.models import Job, JobItem; "
                                    f"j = Job.objects.get(handout={material_id}); "
                                    "print(json.dumps([j.message, [i.status for i in j.items.all()]]))"))  # fmt: skip
    assert "Docker engine does not answer" in state[0] and state[1] == ["pending"], state
    stack.portal.start_worker(after_death=True)
    wait(
        lambda: in_volume(docker_client, dan, "course/第六周/w6.md") == "six",
        60,
        "the hand-out after the engine is back",
    )
    client.close()
