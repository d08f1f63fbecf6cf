"""Course figures (issue 22, scope 7): hand out a folder to a class on Docker volumes and collect it back, with the
course worker as production runs it, against a plain `docker cp` / `tar` of the same bytes into the same volumes,
measured in the same run; and the portal's page time while the worker works.

    .venv/bin/python tests/bench/course.py                          # 200 students, half running, 5 MB, 3 rounds
    .venv/bin/python tests/bench/course.py --students 20 --rounds 1 # a quick look

What runs: the portal under gunicorn and `manage.py course_worker` as their own processes (tests/live.py
PortalProcess, dev profile, SPAWNER=docker, COURSE_HOME_ACCESS=container: every home reached through a helper
container of the notebook image, as when the worker is not root). The worker runs twice a round: with
COURSE_HELPER_BATCH's default (one helper container serving up to 20 homes in a row) and with
COURSE_HELPER_BATCH=1 (a helper container per home, as the worker first did), in alternating order. No hub: "running" students are simulated by
real containers of the notebook image that sleep with the student's volume mounted at /home/jovyan (what matters
to the worker is a volume in use by a live container); the others' volumes are not mounted anywhere. Every
volume is filled first with the image's home folder, as Docker does at a server's first start.

Each worker run hands out a new assignment (a folder of --files files, --size-mb in all) to every student, then
moves its due time to now, so the worker collects every student's folder (the due-time collection: 200 hand-ins).
The baseline, right after each worker phase: the same folder written into each home, one after the other, by
`docker cp` into the running container, or `tar` through a bare `docker run --rm -i` of the same image for a
volume that no container uses; and read back the same ways. Wall time of a phase: from the job's creation to its
last student's result (the worker's own timestamps); the baseline's: around its commands. Neither wall time
counts the other's work: they run one after the other. Per-student cost is
wall time / students. While the worker works, a student's course page (/course/) is fetched every 0.2 s;
its p95 is the portal's page time during the work.

Figures are medians of rounds, one line each; ratios against the baseline of the same round. Everything talks to
127.0.0.1 and the local Docker engine only; every container and volume carries the run's tag and is removed at
the end, with the run's temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from portal.config import containers as ct  # noqa: E402
from portal.config.table import BY_NAME  # noqa: E402
from tests.e2e import flows  # noqa: E402
from tests.live import PortalProcess  # noqa: E402

RUN = secrets.token_hex(3)
IMAGE = BY_NAME["DOCKER_IMAGE"].default_for("dev")
PASSWORD = "Bench-course-2026"
BATCH = 40  # volumes filled by one container


def say(name: str, value: str) -> None:
    print(f"{name:<62} {value}", flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def docker(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=600)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: {result.stderr.decode(errors='replace')[-500:]}")
    return result


# --- the class -----------------------------------------------------------------------------------------------
def usernames(n: int) -> list[str]:
    return [f"b{RUN}-s{i:03d}" for i in range(n)]


def running_name(username: str) -> str:
    return f"cfps-bench-{RUN}-{username}"


def make_homes(names: list[str], running: set[str]) -> None:
    """Each student's volume, filled with the image's home folder; the running ones mounted by a sleeping container."""
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        mounts = []
        for i, name in enumerate(batch):
            docker("volume", "create", "--label", f"cfps-bench={RUN}", ct.user_volume(name))
            mounts += ["-v", f"{ct.user_volume(name)}:/h/{i}"]
        docker(
            "run", "--rm", "--network", "none", "--user", "0", *mounts, "--entrypoint", "sh", IMAGE, "-c",
            "for d in /h/*; do cp -a /home/jovyan/. \"$d\"/ && chown -R 1000:100 \"$d\"; done",
        )  # fmt: skip
    for name in names:
        if name in running:
            docker(
                "run", "-d", "--name", running_name(name), "--label", f"cfps-bench={RUN}", "--network", "none",
                "--user", "1000:100", "--memory", "64m", "-v", f"{ct.user_volume(name)}:/home/jovyan",
                "--entrypoint", "sleep", IMAGE, "infinity",
            )  # fmt: skip


def remove_everything() -> None:
    ids = docker("ps", "-aq", "--filter", f"label=cfps-bench={RUN}", check=False).stdout.decode().split()
    helpers = [
        line.split()[0]
        for line in docker("ps", "-a", "--format", "{{.ID}} {{.Names}}", check=False).stdout.decode().splitlines()
        if f"b{RUN}-s" in line
    ]
    if ids or helpers:
        docker("rm", "-f", *ids, *helpers, check=False)
    volumes = docker("volume", "ls", "-q", "--filter", f"label=cfps-bench={RUN}", check=False).stdout.decode().split()
    for start in range(0, len(volumes), 50):
        docker("volume", "rm", "-f", *volumes[start : start + 50], check=False)


def make_folder(root: Path, files: int, size_mb: float, tag: str) -> Path:
    """A folder as a teacher hands out: notebooks and data files, `size_mb` in all (random text, so nothing
    compresses it away)."""
    folder = root / tag
    folder.mkdir(parents=True)
    each = int(size_mb * 1024**2 / files)
    for i in range(files):
        name = f"数据/表{i:02d}.csv" if i % 2 else f"第{i:02d}节.ipynb"
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(secrets.token_hex(each // 2).encode()[:each])
    return folder


SETUP = """
from django.contrib.auth.models import Group
from accounts.models import User
group = Group.objects.create(name="bench-{run}")
users = User.objects.bulk_create([User(username=name, password="!") for name in {names!r}])
group.user_set.add(*users)
first = User.objects.get(username={names!r}[0])
first.set_password({password!r})
first.save()
print(group.pk)
"""

HAND_OUT = """
import datetime as dt
from pathlib import Path
from django.contrib.auth.models import Group
from django.utils import timezone
from course import bundles, jobs
from course.models import Assignment, Job
now = timezone.now()
hw = Assignment.objects.create(title={title!r}, release_at=now, due_at=now + dt.timedelta(days=1))
hw.groups.add(Group.objects.get(name="bench-{run}"))
bundle = bundles.from_folder(Path({folder!r}))
jobs.hand_out(hw, bundle)
print(hw.pk, Job.objects.filter(handout=hw, kind="hand_out").get().pk)
"""

DUE_NOW = """
from django.utils import timezone
from course import jobs
from course.models import Assignment, Job
hw = Assignment.objects.get(pk={pk})
hw.due_at = timezone.now()
hw.save()
jobs.reschedule(hw)
print(Job.objects.filter(handout=hw, kind="auto_collect").exclude(status="cancelled").get().pk)
"""


class Worker:
    """`manage.py course_worker` as run.sh starts it, with a batch size of our choosing."""

    def __init__(self, portal: PortalProcess, batch: int):
        env = {**portal.env, "COURSE_HELPER_BATCH": str(batch)}
        self.log = open(portal.tmp_path / f"worker-{batch}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "course_worker", "--interval", "0.5"], cwd=REPO, env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(portal.url("/healthz"), trust_env=False, timeout=5).json().get("worker") == "ok":
                return
            time.sleep(0.25)
        raise RuntimeError("the course worker did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=600)
        self.log.close()


class Portal:
    def __init__(self, tmp: Path):
        env = {
            "SPAWNER": "docker",
            "DOCKER_NETWORK": "host",
            "DOCKER_IMAGE": IMAGE,
            "COURSE_HOME_ACCESS": "container",
            "COURSE_UPLOAD_LIMIT": "100M",
            "COURSE_HANDIN_LIMIT": "100M",
        }
        self.process = PortalProcess(tmp / "portal", extra_env=env)
        self.db = tmp / "portal" / "portal.sqlite3"

    def shell(self, script: str) -> list[str]:
        return self.process.manage("shell", "-c", script, timeout=600).stdout.split()

    def job(self, pk: int) -> dict:
        with sqlite3.connect(self.db, timeout=30) as db:
            created, status = db.execute("SELECT created_at, status FROM course_job WHERE id = ?", (pk,)).fetchone()
            counts = dict(
                db.execute("SELECT status, count(*) FROM course_jobitem WHERE job_id = ? GROUP BY status", (pk,))
            )
            last = db.execute("SELECT max(finished_at) FROM course_jobitem WHERE job_id = ?", (pk,)).fetchone()[0]
        return {"created": created, "status": status, "counts": counts, "last": last}

    def wait(self, pk: int, students: int, timeout: float = 3600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(pk)
            if job["status"] == "done" and sum(job["counts"].values()) >= students:
                return job
            time.sleep(0.5)
        raise RuntimeError(f"job {pk} not done in {timeout:.0f} s: {self.job(pk)}")


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class Probe:
    """A student's course page, fetched every `every` s while started."""

    def __init__(self, portal: PortalProcess, username: str, every: float = 0.2):
        self.client = httpx.Client(base_url=portal.url("/"), trust_env=False, timeout=30, follow_redirects=True)
        page = self.client.get("/accounts/login/")
        token = flows.csrf_token(self.client, page.text)
        login = self.client.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": str(page.url)},
        )
        if "/accounts/login/" in str(login.url):
            raise RuntimeError("the probe's student could not log in")
        self.every = every
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self):
        while not self._stop.is_set():
            started = time.perf_counter()
            response = self.client.get("/course/")
            if response.status_code != 200:
                raise RuntimeError(f"/course/ answered {response.status_code}")
            self.times.append(time.perf_counter() - started)
            self._stop.wait(self.every)

    def start(self):
        self.times, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(60)
        return self.times


# --- the baseline ----------------------------------------------------------------------------------------------
def tar_of(folder: Path, arcname: str) -> bytes:
    buffer = tempfile.SpooledTemporaryFile(max_size=64 * 1024**2)
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=arcname)
    buffer.seek(0)
    return buffer.read()


def baseline_in(names: list[str], running: set[str], folder: Path, dest: str) -> float:
    data = tar_of(folder, dest)
    started = time.perf_counter()
    for name in names:
        if name in running:
            docker("cp", str(folder), f"{running_name(name)}:/home/jovyan/{dest}")
        else:
            docker(
                "run", "--rm", "-i", "--network", "none", "--user", "1000:100",
                "-v", f"{ct.user_volume(name)}:/home/jovyan", "--entrypoint", "tar", IMAGE, "-x", "-C", "/home/jovyan",
                input=data,
            )  # fmt: skip
    return time.perf_counter() - started


def baseline_out(names: list[str], running: set[str], source: str, target: Path) -> float:
    started = time.perf_counter()
    for name in names:
        into = target / name
        into.mkdir(parents=True)
        if name in running:
            docker("cp", f"{running_name(name)}:/home/jovyan/{source}", str(into / "copy"))
        else:
            out = docker(
                "run", "--rm", "--network", "none", "--user", "1000:100",
                "-v", f"{ct.user_volume(name)}:/home/jovyan:ro", "--entrypoint", "tar", IMAGE,
                "-c", "-C", "/home/jovyan", source,
            ).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(into)], input=out, check=True, timeout=600)
    return time.perf_counter() - started


def container_start() -> float:
    """The fixed cost of one short container of the image (median of 5)."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        docker("run", "--rm", "--network", "none", "--entrypoint", "true", IMAGE)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# --- a round -------------------------------------------------------------------------------------------------
def worker_run(portal: Portal, probe: Probe, names, folder: Path, title: str, batch: int) -> dict:
    """Hand out `folder` as a new assignment to every student, then collect it at its due time, with a worker of
    batch size `batch`."""
    worker = Worker(portal.process, batch)
    try:
        probe.start()
        pk, job = map(int, portal.shell(HAND_OUT.format(title=title, run=RUN, folder=folder.name))[-2:])
        handed = portal.wait(job, len(names))
        collect_job = int(portal.shell(DUE_NOW.format(pk=pk))[-1])
        collected = portal.wait(collect_job, len(names))
        times = probe.stop()
    finally:
        worker.stop()
    shutil.rmtree(portal.process.tmp_path / "var" / "course" / "handins" / str(pk), ignore_errors=True)
    return {
        "hand_out": seconds_between(handed["created"], handed["last"]),
        "hand_out_items": handed["counts"],
        "collect": seconds_between(collected["created"], collected["last"]),
        "collect_items": collected["counts"],
        "p95": percentile(times, 95),
        "probes": len(times),
    }


def one_round(portal: Portal, probe: Probe, names, running, tmp: Path, args, r: int) -> dict:
    # Under DATA_ROOT/course/, where a teacher's folder on the server is picked from (course/bundles.py).
    folder = make_folder(portal.process.tmp_path / "var" / "volumes" / "course", args.files, args.size_mb, f"r{r}")
    result = {"bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}
    order = [args.batch, 1] if r % 2 == 0 else [1, args.batch]
    for batch in order:
        key = "batch" if batch == args.batch else "one"
        result[key] = worker_run(portal, probe, names, folder, f"bench-{RUN}-r{r}-{key}", batch)
    result["baseline_in"] = baseline_in(names, running, folder, f"baseline-r{r}")
    title = f"bench-{RUN}-r{r}-batch"
    copies = tmp / "baseline-copies" / f"r{r}"
    result["baseline_out"] = baseline_out(names, running, f"assignments/{title}", copies)
    shutil.rmtree(copies, ignore_errors=True)
    print(f"# round {r + 1}: {json.dumps(result, ensure_ascii=False)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--running", type=float, default=0.5, help="share of students with a running server (0.5)")
    parser.add_argument("--size-mb", type=float, default=5.0, help="the folder's size (5 MB)")
    parser.add_argument("--files", type=int, default=20, help="files in the folder (20)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20, help="COURSE_HELPER_BATCH of the batched runs (20)")
    args = parser.parse_args()
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        sys.exit(f"the image {IMAGE} is missing: .venv/bin/python manage.py build_image")
    names = usernames(args.students)
    running = set(names[: round(len(names) * args.running)])
    tmp = Path(tempfile.mkdtemp(prefix="cfps-bench-course-"))
    portal = Portal(tmp)
    try:
        print(f"# {args.students} students ({len(running)} with a sleeping container of {IMAGE} holding their volume),"
              f" a folder of {args.files} files, {args.size_mb} MB, {args.rounds} rounds; load {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
        started = time.perf_counter()
        make_homes(names, running)
        print(f"# homes made in {time.perf_counter() - started:.0f} s", flush=True)
        portal.process.start()
        portal.shell(SETUP.format(run=RUN, names=names, password=PASSWORD))
        probe = Probe(portal.process, names[0])
        start_cost = container_start()
        rounds = [one_round(portal, probe, names, running, tmp, args, r) for r in range(args.rounds)]
    finally:
        portal.process.stop()
        remove_everything()
        shutil.rmtree(tmp, ignore_errors=True)

    n = args.students

    def med(*keys):
        def value(r):
            for key in keys:
                r = r[key]
            return r

        return statistics.median(value(r) for r in rounds)

    def ratio(a, b):
        return statistics.median(r[a[0]][a[1]] / r[b] for r in rounds)

    say("students (running, stopped)", f"{n} ({len(running)}, {n - len(running)})")
    say("folder", f"{args.files} files, {rounds[0]['bytes'] / 1024**2:.1f} MB")
    for phase, base in (("hand_out", "baseline_in"), ("collect", "baseline_out")):
        what = "hand out" if phase == "hand_out" else "collect"
        for key, label in (("batch", f"worker, {args.batch} homes a helper"), ("one", "worker, a helper per home")):
            wall = med(key, phase)
            say(f"{what}, {label}: wall / per student", f"{wall:.1f} s / {wall / n * 1000:.0f} ms")
        wall = med(base)
        say(f"{what}, docker cp / tar: wall / per student", f"{wall:.1f} s / {wall / n * 1000:.0f} ms")
        say(f"{what}, worker ({args.batch} a helper) / baseline (goal <= 2x)", f"{ratio(('batch', phase), base):.2f}x")
        say(f"{what}, worker (a helper per home) / baseline", f"{ratio(('one', phase), base):.2f}x")
    say("portal /course/ p95 while the worker works (goal <= 250 ms)",
        f"{med('batch', 'p95') * 1000:.0f} ms batched, {med('one', 'p95') * 1000:.0f} ms a helper per home")  # fmt: skip
    say("one bare container of the image, start to end", f"{start_cost * 1000:.0f} ms")
    say("rounds, load average at the end", f"{len(rounds)}, {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
