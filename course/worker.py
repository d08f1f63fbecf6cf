"""The course worker: the only process that touches students' homes (`python manage.py course_worker`).

Why not a queue library: django-tasks' database backend (django-tasks-db) leaves a task "running" for ever
when its worker is killed, has no heartbeat and no periodic work; Celery needs a broker the embedded set-up
does not have. The durable part (Job, JobItem) had to be ours anyway, and what is left is this loop.

Rules:
- All state is in the database; the worker keeps none. It claims one item at a time with a conditional
  UPDATE (to do → running, with its name), so two workers never do the same item.
- Heartbeat: its Worker row's `seen_at`, every HEARTBEAT seconds; /healthz and `manage.py status` call the
  worker alive when it was seen within Worker.ALIVE_SECONDS.
- Restart: an item left "running" by a worker that is gone (not seen within ALIVE_SECONDS, or its process on
  this machine has ended) is done again: every item is idempotent. After MAX_ATTEMPTS such starts it fails
  with that reason, so an item that kills the worker cannot hold up the others.
- Scheduling: a job runs from its `run_at` on (a hand-out at a set time, the collection at the due time); the
  worker looks every `interval` seconds (1 by default), so a collection starts within that of the due time.
- Order: the highest priority first (a student's 提交, then collections, then hand-outs), then the earliest.
- Batches: with the first item of a hand-out or of a due-time collection whose homes are reached through helper
  containers, the worker takes up to COURSE_HELPER_BATCH - 1 more of the same job and does them one after another
  while one helper container serves all their homes (userspace/homes.py Homes.batch). An item counts as started (its `attempts`) only when
  its turn comes, so a batch cut short by a crash charges only the item it was on; on SIGTERM, or when the engine
  goes away, the items whose turn has not come are put back at once.
- Warm-ups (course/warmup.py): the items of a warm-up are claimed one by one and run in threads, at most
  WARMUP_CONCURRENCY at once (each mostly waits for the hub); a new one starts as soon as one ends. The worker
  stays on that warm-up until its last item is claimed (a hand-in asked meanwhile waits for it: a warm-up of
  200 takes a few minutes), keeps beating, and on SIGTERM claims no more and lets the started ones end.
- Homes that did not exist: every WAITING_CHECK seconds, waiting items whose home exists now are done.
- An engine that does not answer leaves the item to do, pauses the work for ENGINE_PAUSE seconds and says so
  on the job; the job's message goes once an item of it runs again.
- SIGTERM or SIGINT: the current item is finished, then the worker stops.
- Housekeeping: at its start and once a day after that, the worker deletes the entries of the record of who did
  what older than AUDIT_RETENTION_DAYS (audit/retention.py; idempotent, so several workers or a restart do no
  harm). It runs all the time under run.sh and systemd, so no cron job is needed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import socket
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import nullcontext

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django.db.models import F
from django.utils import timezone

from audit import retention
from course import jobs
from course.messages import N_, note, show
from course.models import Job, JobItem, Worker
from userspace.homes import EngineAway

log = logging.getLogger("course.worker")

HEARTBEAT = 5
WAITING_CHECK = 10
ENGINE_PAUSE = 30
MAX_ATTEMPTS = 3
DATABASE_PAUSE = 5
HOUSEKEEPING = 24 * 3600
BATCHED = (Job.Kind.HAND_OUT, Job.Kind.AUTO_COLLECT)  # one job, many homes, the same files or folder


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def process_gone(name: str, me: str = "") -> bool:
    """Whether the worker `name` ran on this machine and its process has ended (or it is an earlier worker of
    this very process, `me` being the current one)."""
    host, _, rest = name.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return name != me
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def recover(now=None, me: str = "") -> int:
    """Put back the items of workers that are gone; returns how many."""
    now = now or timezone.now()
    alive = set(Worker.alive(now).values_list("name", flat=True))
    gone = {
        name
        for name in JobItem.objects.filter(status=JobItem.Status.RUNNING).values_list("worker", flat=True).distinct()
        if name != me and (name not in alive or process_gone(name, me))
    }
    if not gone:
        return 0
    running = JobItem.objects.filter(status=JobItem.Status.RUNNING, worker__in=gone)
    failed = running.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=JobItem.Status.FAILED,
        worker="",
        finished_at=now,
        message=note(N_("The worker stopped %(count)d times while doing this; see its log."), count=MAX_ATTEMPTS),
    )
    again = running.update(status=JobItem.Status.PENDING, worker="", started_at=None)
    Worker.objects.filter(name__in=gone).delete()
    if failed or again:
        log.warning("Items of stopped workers: %d to do again, %d failed", again, failed)
    return failed + again


class CourseWorker:
    def __init__(self, homes, interval: float = 1.0, name: str | None = None):
        self.homes = homes
        self.interval = interval
        self.name = name or worker_name()
        self.stopping = False
        self.paused_until = 0.0
        self.last_beat = 0.0
        self.last_waiting_check = 0.0
        self.last_housekeeping: float | None = None

    # --- the loop ---------------------------------------------------------------------------------------------
    def run(self, until_idle: bool = False) -> None:
        """Work until stopped (SIGTERM/SIGINT), or, with `until_idle`, until nothing is left to do now."""
        self.start()
        try:
            while not self.stopping:
                if not connection.in_atomic_block:  # (a test's transaction stays open)
                    close_old_connections()
                try:
                    self.beat()
                    self.housekeep()
                    did = self.step()
                except DatabaseError as exc:
                    # The database is away (restarting, full): nothing was lost, every state is in it. Try again.
                    log.warning("The database does not answer (%s); trying again in %d s", exc, DATABASE_PAUSE)
                    time.sleep(DATABASE_PAUSE)
                    continue
                if until_idle and not did:  # nothing due, or nothing possible now (paused)
                    return
                if not did:
                    time.sleep(self.interval)
        finally:
            Worker.objects.filter(name=self.name).delete()

    def stop(self, *_args) -> None:
        self.stopping = True

    def start(self) -> None:
        now = timezone.now()
        Worker.objects.filter(seen_at__lt=now - dt.timedelta(days=1)).delete()  # long gone
        Worker.objects.update_or_create(name=self.name, defaults={"started_at": now, "seen_at": now})
        recover(me=self.name)
        for partial in settings.COURSE.handins_dir.glob("*/.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
        log.info(
            "Course worker %s started (%s homes, access %s, up to %d homes a helper container)",
            self.name, self.homes.spawner, self.homes.access, getattr(self.homes, "batch_size", 1),
        )  # fmt: skip

    def beat(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last_beat >= HEARTBEAT:
            self.last_beat = time.monotonic()
            now = timezone.now()
            if not Worker.objects.filter(name=self.name).update(seen_at=now):
                Worker.objects.create(name=self.name, started_at=now, seen_at=now)
            recover(now, me=self.name)

    def housekeep(self) -> None:
        """At the start, then once a day: the record's expired entries go. A database that does not answer is the
        loop's to wait for (tried again then); any other failure is logged and tried again the next day."""
        if self.last_housekeeping is not None and time.monotonic() - self.last_housekeeping < HOUSEKEEPING:
            return
        try:
            deleted = retention.prune()
        except DatabaseError:
            raise
        except Exception:
            log.exception("Housekeeping failed; trying again in a day")
            deleted = 0
        self.last_housekeeping = time.monotonic()
        if deleted:
            log.info("Deleted %d entries of the record older than the retention", deleted)

    def step(self) -> bool:
        """Do one thing that is due; False when there was nothing."""
        now = timezone.now()
        for job in Job.objects.filter(expanded=False, status=Job.Status.PENDING, run_at__lte=now).order_by("run_at"):
            count = jobs.expand(job)
            log.info("Job %s (%s): %d students", job.pk, job.get_kind_display(), count)
        if time.monotonic() < self.paused_until:
            return False
        if time.monotonic() - self.last_waiting_check >= WAITING_CHECK:
            self.last_waiting_check = time.monotonic()
            self.wake_waiting()
        items = self.claim(now)
        if not items:
            return False
        if items[0].job.kind == Job.Kind.WARM_UP:
            self.run_warm_up(items[0])
        else:
            self.run_batch(items)
        return True

    def claim(self, now) -> list[JobItem]:
        """The next item to do, and, for a job whose items may share a helper, more of the same job (module rules)."""
        candidates = (
            JobItem.objects.filter(status=JobItem.Status.PENDING, job__expanded=True, job__run_at__lte=now)
            .exclude(job__status=Job.Status.CANCELLED)
            .order_by("-job__priority", "job__run_at", "job_id", "pk")
            .values_list("pk", flat=True)[:5]
        )
        for pk in candidates:
            taken = JobItem.objects.filter(pk=pk, status=JobItem.Status.PENDING).update(
                status=JobItem.Status.RUNNING, worker=self.name, started_at=now, attempts=F("attempts") + 1
            )
            if taken:
                first = JobItem.objects.select_related("job", "job__version__bundle", "student", "submission",
                                                       "bundle").get(pk=pk)  # fmt: skip
                return [first, *self._claim_more(first, now)]
        return []

    def _claim_more(self, first: JobItem, now) -> list[JobItem]:
        size = getattr(self.homes, "batch_size", 1)
        if size < 2 or first.job.kind not in BATCHED or self.homes.direct(self.homes.home(first.username)):
            return []  # homes this process opens itself gain nothing from a batch
        more = list(
            JobItem.objects.filter(job_id=first.job_id, status=JobItem.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)[: size - 1]
        )
        if not more:
            return []
        JobItem.objects.filter(pk__in=more, status=JobItem.Status.PENDING).update(
            status=JobItem.Status.RUNNING, worker=self.name, started_at=now
        )
        return list(
            JobItem.objects.filter(pk__in=more, status=JobItem.Status.RUNNING, worker=self.name)
            .select_related("job", "student", "submission", "bundle")
            .order_by("pk")
        )

    def release(self, items: list[JobItem]) -> None:
        """Put back the claimed items whose turn has not come."""
        JobItem.objects.filter(
            pk__in=[item.pk for item in items], status=JobItem.Status.RUNNING, worker=self.name
        ).update(status=JobItem.Status.PENDING, worker="", started_at=None)

    def run_batch(self, items: list[JobItem]) -> None:
        job = items[0].job
        source = job.version.bundle.path if job.kind == Job.Kind.HAND_OUT and job.version_id else None
        homes = [self.homes.home(item.username) for item in items if item.student_id]
        done = 0
        try:
            with self.homes.batch(homes, source) if len(items) > 1 else nullcontext():
                for done, item in enumerate(items):
                    if self.stopping or time.monotonic() < self.paused_until:
                        break
                    if done:
                        self.beat()
                        JobItem.objects.filter(pk=item.pk).update(attempts=F("attempts") + 1)
                    self.run_item(item)
                else:
                    done = len(items)
        except EngineAway as away:  # the batch's homes could not even be listed
            self.pause(job, away)
        finally:
            self.release(items[done:])

    def run_warm_up(self, first: JobItem) -> None:
        """A warm-up's items, up to WARMUP_CONCURRENCY at once (module rules)."""
        size = settings.COURSE.warmup_concurrency
        if size < 2:  # one at a time, in this thread
            self.run_item(first)
            while not self.stopping and (item := self._claim_of(first.job_id)):
                self.beat()
                self.run_item(item)
            return
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="warm-up") as pool:
            running = {pool.submit(self._in_thread, first)}
            while running:
                while len(running) < size and not self.stopping and (item := self._claim_of(first.job_id)):
                    running.add(pool.submit(self._in_thread, item))
                _, running = wait_for(running, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
                self.beat()

    def _claim_of(self, job_id: int) -> JobItem | None:
        """The next item of this job to do, claimed for this worker, or None."""
        for pk in (
            JobItem.objects.filter(job_id=job_id, status=JobItem.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)[:5]
        ):
            taken = JobItem.objects.filter(pk=pk, status=JobItem.Status.PENDING).update(
                status=JobItem.Status.RUNNING, worker=self.name, started_at=timezone.now(), attempts=F("attempts") + 1
            )
            if taken:
                return JobItem.objects.select_related("job", "student").get(pk=pk)
        return None

    def _in_thread(self, item: JobItem) -> None:
        try:
            self.run_item(item)
        finally:
            connections.close_all()  # this thread's own connections

    def run_item(self, item: JobItem) -> None:
        job = item.job
        if job.message:  # a pause's reason: it runs again
            Job.objects.filter(pk=job.pk).update(message="")
        try:
            jobs.run_item(item, self.homes)
        except EngineAway as away:
            self.pause(job, away)
            return
        except Exception:
            # A bug, not a student's problem: this item fails with it, the others go on.
            log.exception("Job %s, %s failed", job.pk, item.username)
            JobItem.objects.filter(pk=item.pk).update(
                status=JobItem.Status.FAILED,
                worker="",
                finished_at=timezone.now(),
                message=note(N_("Unexpected error in the worker; see its log.")),
            )
            jobs.finish_job_if_done(job.pk)
            return
        item.refresh_from_db(fields=["status", "message"])
        log.info("Job %s, %s: %s %s", job.pk, item.username, item.status, show(item.message))

    def pause(self, job: Job, away: EngineAway) -> None:
        self.paused_until = time.monotonic() + ENGINE_PAUSE
        message = note(
            N_("Paused: %(reason)s. Trying again every %(seconds)d s."), reason=str(away), seconds=ENGINE_PAUSE
        )
        Job.objects.filter(pk=job.pk).update(message=message)
        log.warning("Job %s paused: %s", job.pk, away)

    def wake_waiting(self) -> int:
        waiting = jobs.waiting_students()
        if not waiting:
            return 0
        homes = {item.username: self.homes.home(item.username) for item in waiting}
        try:
            ready = self.homes.ready(list(homes.values()))
        except EngineAway:
            return 0
        woken = [item.pk for item in waiting if item.username in ready]
        JobItem.objects.filter(pk__in=woken, status=JobItem.Status.WAITING).update(status=JobItem.Status.PENDING)
        return len(woken)


def install_signal_handlers(worker: CourseWorker) -> None:
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
