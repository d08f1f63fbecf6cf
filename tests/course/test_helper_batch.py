"""One helper for many homes (userspace/homes.py Homes.batch, `homefiles.py serve`), and the worker's batches
(course/worker.py): the requests of a batch answered in turn, a copy framed inside the answers, a home that fails
failing alone, a helper that dies ending the batch; the worker taking a job's items together, charging a crash
only to the item it was on, and putting back at once what it did not reach when told to stop.

Here `serve` runs as a plain process on real folders, where production runs it in a container of the notebook
image with the homes mounted (the same file, the same protocol; tests/docker/test_course_batch.py runs it there).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from course.models import JobItem
from portal.config import Config
from portal.config.env import Env
from userspace import homefiles, homes
from userspace.homefiles import HomeError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def local_helper(tmp_path, monkeypatch):
    """Homes reached "through a helper", whose batch helper is `homefiles.py serve` as a local process over
    tmp/homes/<n> (what the container sees as /homes/<n>) and tmp/src (its /src)."""
    source = tmp_path / "src"
    source.mkdir()
    started = []

    class Root:
        """tmp/<helper's name>/: what the latest helper sees as /homes (its homes at /homes/<n>)."""

        def __truediv__(self, n):
            return tmp_path / started[-1] / n

    def command(self, name, members, src):
        # The container would mount each home at /homes/<n>; here the homes are those folders themselves.
        for n in range(len(members)):
            (tmp_path / name / str(n)).mkdir(parents=True)
        started.append(name)
        return [sys.executable, "-I", str(homefiles.__file__), "serve", str(tmp_path / name), str(src or source)]

    monkeypatch.setattr(homes.Homes, "_batch_command", command)
    helper = homes.Homes(Config(Env({"SPAWNER": "local", "COURSE_HOME_ACCESS": "container"})))
    monkeypatch.setattr(helper, "ready", lambda members, now=None: {home.username for home in members})
    return helper, Root(), source, started


def members(names) -> list[homes.Home]:
    return [homes.Home(name, folder=Path("/nonexistent") / name) for name in names]


def test_one_helper_delivers_to_every_home_of_a_batch_by_the_merge_rules(local_helper):
    helper, root, source, started = local_helper
    (source / "week2.ipynb").write_bytes(b"v1")
    (source / "数据").mkdir()
    (source / "数据" / "表.csv").write_bytes(b"1,2")
    files = {"week2.ipynb": sha(b"v1"), "数据/表.csv": sha(b"1,2")}
    batch = members(["ann", "bob", "cat"])
    with helper.batch(batch, source):
        (root / "1" / "course" / "w2").mkdir(parents=True)
        (root / "1" / "course" / "w2" / "week2.ipynb").write_bytes(b"bob's own")  # bob made his own
        results = [helper.deliver(home, "course/w2", source, files, {}) for home in batch]
    assert len(started) == 1  # one helper for the three homes
    assert sorted(results[0]["added"]) == ["week2.ipynb", "数据/表.csv"]
    assert (root / "0" / "course" / "w2" / "数据" / "表.csv").read_bytes() == b"1,2"
    assert results[1]["beside"] == [{"file": "course/w2/week2.ipynb", "new": "course/w2/week2.new.ipynb"}]
    assert (root / "1" / "course" / "w2" / "week2.ipynb").read_bytes() == b"bob's own"
    assert (root / "2" / "course" / "w2" / "week2.ipynb").read_bytes() == b"v1"


def test_one_helper_copies_every_home_and_a_home_that_fails_fails_alone(local_helper, tmp_path):
    helper, root, _source, _started = local_helper
    batch = members(["ann", "bob", "cat", "dan"])
    with helper.batch(batch, None):
        for n, content in ((0, b"ann's answer"), (1, b"x" * 5000), (3, "丹的答案".encode())):
            folder = root / str(n) / "assignments" / "hw"
            folder.mkdir(parents=True)
            (folder / "answer.txt").write_bytes(content)
            (folder / "sub").mkdir()
            (folder / "sub" / "图.png").write_bytes(content[:3])
        copies = {}
        for home in batch:
            try:
                copies[home.username] = helper.collect(home, "assignments/hw", tmp_path / "out" / home.username,
                                                       max_bytes=2000, max_files=10)  # fmt: skip
            except HomeError as error:
                copies[home.username] = error.code
    assert copies["bob"] == "too_big" and copies["cat"] == "no_folder"
    assert sorted(f["path"] for f in copies["ann"]["files"]) == ["answer.txt", "sub/图.png"]
    assert (tmp_path / "out" / "ann" / "answer.txt").read_bytes() == b"ann's answer"
    assert (tmp_path / "out" / "dan" / "answer.txt").read_bytes() == "丹的答案".encode()
    assert copies["dan"]["size"] == len("丹的答案".encode()) + 3
    assert [f["sha256"] for f in copies["dan"]["files"] if f["path"] == "answer.txt"] == [sha("丹的答案".encode())]


class OwnHelper(Exception):
    """Raised where a home would get a helper container of its own."""


def test_a_helper_that_dies_while_answering_ends_the_batch_and_that_home_fails_with_the_reason(
    local_helper, monkeypatch
):
    helper, root, source, _started = local_helper
    (source / "a.txt").write_bytes(b"a")
    batch = members(["ann", "bob"])
    # A helper that reads the request and dies without an answer (killed, out of memory).
    monkeypatch.setattr(
        homes.Homes, "_batch_command", lambda *args: [sys.executable, "-c", "import sys; sys.stdin.readline()"]
    )
    monkeypatch.setattr(homes.Homes, "_helper", lambda *args, **kwargs: (_ for _ in ()).throw(OwnHelper()))
    with helper.batch(batch, source):
        with pytest.raises(HomeError) as failed:
            helper.deliver(batch[0], "course/x", source, {"a.txt": sha(b"a")}, {})
        assert failed.value.code == "helper" and helper._session is None
        with pytest.raises(OwnHelper):  # the next home of the batch: a helper of its own
            helper.deliver(batch[1], "course/x", source, {"a.txt": sha(b"a")}, {})


def test_after_a_helper_died_between_requests_the_next_home_gets_a_helper_of_its_own(local_helper, monkeypatch):
    helper, _root, source, _started = local_helper
    (source / "a.txt").write_bytes(b"a")
    batch = members(["ann", "bob"])
    monkeypatch.setattr(homes.Homes, "_helper", lambda *args, **kwargs: (_ for _ in ()).throw(OwnHelper()))
    with helper.batch(batch, source):
        helper._session.process.kill()
        helper._session.process.wait()
        with pytest.raises(OwnHelper):
            helper.deliver(batch[0], "course/x", source, {"a.txt": sha(b"a")}, {})


def test_homes_this_process_opens_itself_are_not_batched(make_student, group, homes):
    from course import worker
    from course.jobs import expand
    from tests.course.test_jobs import material

    for n in range(3):
        make_student(f"stu{n}")
    job = material(group, {"week2.ipynb": b"v1"}).jobs.get()
    expand(job)
    assert len(worker.CourseWorker(homes, interval=0.05).claim(job.run_at)) == 1  # local homes, opened directly


def test_a_batch_mounts_only_homes_that_exist(local_helper, monkeypatch):
    helper, _root, source, started = local_helper
    monkeypatch.setattr(helper, "ready", lambda members, now=None: {"ann"})
    with helper.batch(members(["ann", "bob", "cat"]), source):
        assert helper._session is None  # one home left: no batch helper for it
    assert started == []


# --- the worker's batches ---------------------------------------------------------------------------------------
def test_the_worker_does_a_hand_out_in_batches_and_puts_back_what_it_did_not_reach(
    make_student, group, local_helper, course_var, monkeypatch
):
    from course import worker
    from tests.course.test_jobs import material

    homes, _root, _source, started = local_helper
    for n in range(5):
        make_student(f"stu{n}")
    handout = material(group, {"week2.ipynb": b"v1"})
    job = handout.jobs.get()
    from course.jobs import expand

    expand(job)
    w = worker.CourseWorker(homes, interval=0.05)
    w.start()
    ran = []
    real = w.run_item

    def run_item(item):
        real(item)
        ran.append(item.username)
        if len(ran) == 2:
            w.stop()  # SIGTERM in the middle of a batch

    monkeypatch.setattr(w, "run_item", run_item)
    assert w.step()
    assert len(started) == 1  # the five homes, one helper
    items = {i.username: i for i in job.items.all()}
    assert ran == ["stu0", "stu1"]
    assert {n for n, i in items.items() if i.status == JobItem.Status.DONE} == {"stu0", "stu1"}
    # What it did not reach is free at once for the next worker, and not charged as an attempt.
    assert {(i.status, i.worker, i.attempts) for n, i in items.items() if n not in ran} == {("pending", "", 0)}
    w2 = worker.CourseWorker(homes, interval=0.05)
    w2.run(until_idle=True)
    assert {i.status for i in job.items.all()} == {JobItem.Status.DONE}
    assert all(i.attempts == 1 for i in job.items.all())


def test_a_crash_in_a_batch_charges_only_the_item_it_was_on(make_student, group, local_helper, course_var):
    from course import worker
    from course.jobs import expand
    from tests.course.test_jobs import material

    homes = local_helper[0]
    for n in range(4):
        make_student(f"stu{n}")
    job = material(group, {"week2.ipynb": b"v1"}).jobs.get()
    expand(job)
    w = worker.CourseWorker(homes, interval=0.05)
    items = w.claim(job.run_at)
    assert [i.username for i in items] == ["stu0", "stu1", "stu2", "stu3"]  # one claim, the whole (small) job
    # The worker is killed while on its first item: only that one was started.
    attempts = dict(job.items.values_list("username", "attempts"))
    assert attempts == {"stu0": 1, "stu1": 0, "stu2": 0, "stu3": 0}
    JobItem.objects.filter(job=job).update(worker="gone-host:1:dead")
    worker.recover(me="someone-else")
    assert set(job.items.values_list("status", flat=True)) == {JobItem.Status.PENDING}


def test_a_return_is_not_batched(make_student, group, local_helper, course_var, staff):
    """Each student's returned files are a bundle of their own: no one helper can serve them."""
    import io

    from course import bundles, jobs, worker
    from tests.course.test_jobs import assignment, zip_of

    students = [make_student(f"stu{n}") for n in range(3)]
    hw = assignment(group)
    folders = bundles.from_zip_folders(io.BytesIO(zip_of({f"stu{n}/a.txt": b"x" for n in range(3)})))
    job = jobs.return_feedback(hw, by=staff, files={s: folders[s.username] for s in students})
    w = worker.CourseWorker(local_helper[0], interval=0.05)
    claimed = w.claim(job.run_at)
    assert [item.job_id for item in claimed] == [job.pk]
