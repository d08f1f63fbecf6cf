"""One helper container for a batch of homes, on real Docker volumes (COURSE_HOME_ACCESS=container, as in
production): a class's hand-out and its due-time collection each go through a single container of the notebook
image that mounts every home of the batch, with the merge rules and the size limit per home; a student whose
volume does not exist yet waits, and the batch never makes the volume. The worker runs in this process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import subprocess
import zipfile

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone

from portal.config import Config
from portal.config import containers as ct
from portal.config.env import Env
from tests.docker.conftest import IMAGE, RUN

NAMES = [f"bt{RUN}-{n}" for n in range(4)]
NO_HOME = f"bt{RUN}-none"


def zip_of(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def in_volume(docker_client, username: str, script: str) -> str:
    """What `script` prints in a throwaway container with the student's volume at /h. The docker CLI attached
    to the container's output, not docker-py's run(), whose read of the logs after the exit came back empty
    once in CI."""
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--user", "1000:100", "--entrypoint", "sh",
         "--mount", f"type=volume,src={ct.user_volume(username)},dst=/h", IMAGE, "-c", script],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout.decode()


@pytest.fixture
def class_on_volumes(db, docker_client, notebook_image, private_var_dir):
    """Four students whose volumes hold the image's home (as after a first start), one without a volume."""
    volumes = {}
    for n, name in enumerate(NAMES):
        volumes[ct.user_volume(name)] = {"bind": f"/h/{n}", "mode": "rw"}
    docker_client.containers.run(
        IMAGE, ["sh", "-c", 'for d in /h/*; do cp -a /home/jovyan/. "$d"/ && chown -R 1000:100 "$d"; done'],
        entrypoint=[], network_mode="none", remove=True, user="0", volumes=volumes,
    )  # fmt: skip
    group = Group.objects.create(name=f"batch-{RUN}")
    User = get_user_model()
    for name in [*NAMES, NO_HOME]:
        User.objects.create_user(username=name, password="x-Cfps-2026").groups.add(group)
    course = dataclasses.replace(settings.COURSE, root=private_var_dir / "course", handin_limit=1024**2)
    with override_settings(COURSE=course):
        yield group


@pytest.fixture
def counted_homes(monkeypatch):
    """The worker's homes through helper containers, counting batch helpers and helpers of their own."""
    from userspace import homes

    counts = {"batch": 0, "own": 0}
    real_session, real_helper, real_collect = homes._Session.__init__, homes.Homes._helper, homes.Homes._helper_collect

    def session(self, *args, **kwargs):
        counts["batch"] += 1
        real_session(self, *args, **kwargs)

    def helper(self, *args, **kwargs):
        counts["own"] += 1
        return real_helper(self, *args, **kwargs)

    def helper_collect(self, *args, **kwargs):
        counts["own"] += 1
        return real_collect(self, *args, **kwargs)

    monkeypatch.setattr(homes._Session, "__init__", session)
    monkeypatch.setattr(homes.Homes, "_helper", helper)
    monkeypatch.setattr(homes.Homes, "_helper_collect", helper_collect)
    env = {"SPAWNER": "docker", "COURSE_HOME_ACCESS": "container", "DOCKER_IMAGE": IMAGE, "COURSE_HELPER_BATCH": "20"}
    return homes.Homes(Config(Env(env))), counts


def run_worker(homes):
    from course import worker

    worker.CourseWorker(homes, interval=0.05).run(until_idle=True)


def test_a_hand_out_and_a_collection_of_a_class_each_take_one_helper_container(
    class_on_volumes, counted_homes, docker_client
):
    from course import bundles, jobs
    from course.models import Assignment, JobItem, Material, Submission

    homes, counts = counted_homes
    group = class_on_volumes
    in_volume(docker_client, NAMES[1], "mkdir -p /h/course/第六周 && echo mine > /h/course/第六周/w6.ipynb")
    material = Material.objects.create(title="第六周")
    material.groups.add(group)
    jobs.hand_out(material, bundles.from_zip(zip_of({"w6.ipynb": b"v1", "数据/说明.md": "读我".encode()})))
    run_worker(homes)
    assert counts == {"batch": 1, "own": 0}
    items = {i.username: i for i in JobItem.objects.filter(job__handout=material)}
    assert {items[n].status for n in NAMES} == {JobItem.Status.DONE}
    assert items[NO_HOME].status == JobItem.Status.WAITING
    assert in_volume(docker_client, NAMES[0], "cat /h/course/第六周/w6.ipynb /h/course/第六周/数据/说明.md") == "v1读我"
    assert in_volume(docker_client, NAMES[1], "cat /h/course/第六周/w6.ipynb /h/course/第六周/w6.new.ipynb") == (
        "mine\nv1"
    )
    volumes = {v.name for v in docker_client.volumes.list()}
    assert ct.user_volume(NO_HOME) not in volumes, "the batch made a volume for a student who never started"

    # An assignment, answered, one folder over the size limit (1 MB), then collected at the due time.
    now = timezone.now()
    hw = Assignment.objects.create(title="作业三", release_at=now, due_at=now + dt.timedelta(hours=1))
    hw.groups.add(group)
    jobs.hand_out(hw, bundles.from_zip(zip_of({"hw3.ipynb": b"{}"})))
    run_worker(homes)
    for n, name in enumerate(NAMES):
        size = 2 if n == 2 else 0
        in_volume(docker_client, name, f"echo 答案{n} > /h/assignments/作业三/answer.txt && "
                                       f"head -c {size}M /dev/zero > /h/assignments/作业三/big.bin")  # fmt: skip
    counts.update(batch=0, own=0)
    hw.due_at = timezone.now()
    hw.save()
    jobs.reschedule(hw)
    run_worker(homes)
    assert counts == {"batch": 1, "own": 0}
    latest = {s.student.username: s for s in hw.latest_submissions().values()}
    assert sorted(latest) == [NAMES[0], NAMES[1], NAMES[3]]
    assert (latest[NAMES[3]].path / "answer.txt").read_text() == "答案3\n"
    failed = JobItem.objects.get(job__handout=hw, job__kind="auto_collect", username=NAMES[2])
    assert failed.status == JobItem.Status.FAILED and "2.0 MB" in failed.shown_message and "1.0 MB" in failed.message
    assert not Submission.objects.filter(assignment=hw, student__username=NAMES[2]).exists()
