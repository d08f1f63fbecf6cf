"""Warm up a group (预热服务器): every student's server starts before the class clicks 打开 JupyterLab.

Asking (the admin, course/admin_views.py): `capacity(group)` says how many servers would start and whether the
machine's memory takes them; `warm_up(group, by, run_at)` queues a job of kind WARM_UP (now, or at a set time)
and records it (audit kind WARMUP). Doing: the course worker (course/worker.py) runs its items, at most
WARMUP_CONCURRENCY at once, each through `warm_item`.

Rules:
- Who: the group's members when the job runs (a student who joins before then is warmed too). Staff members
  are skipped (a staff hub user gets its role at its own login); deactivated and deleted accounts are
  skipped with that reason. The account is read again right before the start, and once the server is up: a
  student deactivated or deleted meanwhile never keeps a server (the deactivation itself also stops it,
  accounts/hub.py).
- How: through the hub's REST API as the portal's service (accounts/hub.py `start_server`), so the server
  starts through the hub's normal spawn: the same spawner (local, Docker or Swarm, by configuration only),
  image, volumes, limits and group volumes as a start from the browser. A hub user that does not exist yet
  (the student never logged in to the hub) is made first, and an existing one brought in line, as the login
  would leave it (accounts/hub.py `sync_hub_user`, the portal's narrow call: the same groups, so the same team
  volumes). A server already running counts as done ("already running").
- Memory: the warm-up is refused, with the figures, when the servers to start need more than the host's
  available memory (/proc/meminfo MemAvailable): each needs its memory limit (MEM_LIMIT, or the largest of its
  groups' in GROUP_LIMITS), or, where no limit is set (the local spawner, an empty MEM_LIMIT), the measured
  size of an idle server (IDLE_SERVER_BYTES). A limit is what a server may grow to, so this keeps a class from
  pushing the machine into swapping or the OOM killer once they all open notebooks. Checked when asked (a
  warm-up now) and again when the job runs (a warm-up at a set time meets the memory of that moment). With
  Swarm the servers run on the swarm's nodes, whose memory this host does not know: not checked.
- The idle culler (jupyterhub-idle-culler, hubconfig/config.py) has no per-user exemption, and a server that
  nobody has opened counts as idle from its start. So once a server is up, the warm-up tells the hub the
  server was last active at `warm-up + WARMUP_GRACE_MINUTES - HUB_IDLE_TIMEOUT_SECONDS` when that is later than
  its real activity (POST /users/<name>/activity, JupyterHub's own API for activity): the culler, unchanged,
  then culls it at the end of the grace, not before, and the student's own activity later counts as usual
  (the hub keeps the latest stamp). Nothing else is touched: no culler options, no list of exempt users to
  forget. The hub takes stamps at most 59 minutes ahead, hence the bound on WARMUP_GRACE_MINUTES
  (portal/config/course.py). With a grace no longer than the idle timeout nothing needs telling.
- Who may: `course.warm_up`, which teachers hold (course.*) and TAs do not (accounts/roles.py): a warm-up
  spends the machine's memory for everyone, like a hand-out, which TAs only watch. TAs see the progress page.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import hub
from audit.kinds import Kind
from audit.records import record
from course.messages import N_, note, show
from course.models import Job, JobItem

MB = 1024**2
# An idle server as measured (docs/benchmarks.md: 77 and 81 MB for a container, the local spawner's process tree
# counts more), rounded up: what a warm-up reserves per server when no memory limit is set.
IDLE_SERVER_BYTES = 120 * MB
POLL_SECONDS = 0.5


class WarmupRefused(Exception):
    """The warm-up cannot run; the message is for the teacher, with the figures."""


@dataclass
class Capacity:
    count: int  # servers to start
    needed: int  # bytes
    available: int | None  # bytes; None: not known here (Swarm, no /proc/meminfo)
    each: int  # bytes per server: the (largest) memory limit, or IDLE_SERVER_BYTES
    limited: bool  # whether `each` is a memory limit

    @property
    def ok(self) -> bool:
        return self.available is None or self.needed <= self.available

    def refusal(self) -> str:
        """Why not, with the figures (stored with course.messages.note; show() translates it)."""
        figures = {
            "count": self.count,
            "needed": _gb(self.needed),
            "each": _gb(self.each),
            "available": _gb(self.available or 0),
        }
        if self.limited:
            return note(
                N_("Not enough memory to warm up %(count)d servers: with a memory limit of %(each)s each they may "
                   "use %(needed)s, and the server has %(available)s available. Warm up a smaller group, or stop "
                   "servers first."), **figures,
            )  # fmt: skip
        return note(
            N_("Not enough memory to warm up %(count)d servers: at %(each)s each (an idle server as measured; no "
               "memory limit is set) they need %(needed)s, and the server has %(available)s available. Warm up a "
               "smaller group, or stop servers first."), **figures,
        )  # fmt: skip


def _gb(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / MB:.0f} MB"


def mem_available() -> int | None:
    """The host's MemAvailable in bytes, or None without /proc/meminfo."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def spawner() -> str:
    from userspace.engine import choose_spawner

    return choose_spawner(settings.CONFIG)[0]


def students(group):
    """The members a warm-up starts servers for (active, not staff), as it would list them now."""
    return group.user_set.filter(is_active=True, is_staff=False).order_by("username")


def running_servers() -> set[str] | None:
    """Names of users whose server runs or is starting, or None when the hub does not answer."""
    try:
        status, body = hub.api("GET", "/users?state=active&limit=10000", timeout=5)
    except hub.HubError:
        return None
    if status != 200:
        return None
    users = body.get("items", body) if isinstance(body, dict) else body
    return {user["name"] for user in users or []}


def capacity(group, kind: str | None = None) -> Capacity:
    """How many servers a warm-up of `group` would start now and whether memory allows it (module rules)."""
    kind = kind or spawner()
    members = list(students(group).prefetch_related("groups"))
    running = running_servers() or set()
    to_start = [m for m in members if m.username not in running]
    containers = settings.CONTAINERS
    available = None if kind == "swarm" else mem_available()
    if kind == "local" or not containers.mem_limit:
        each = IDLE_SERVER_BYTES
        return Capacity(len(to_start), each * len(to_start), available, each, limited=False)
    limits = [_limit_of(m, containers) for m in to_start]
    return Capacity(len(to_start), sum(limits), available, max(limits, default=containers.mem_limit), limited=True)


def _limit_of(user, containers) -> int:
    """The user's memory limit as the spawner sets it: the largest of their groups' GROUP_LIMITS, else MEM_LIMIT."""
    names = {g.name for g in user.groups.all()}
    overrides = [lim.mem_bytes for name, lim in containers.group_limits.items() if name in names and lim.mem_bytes]
    return max(overrides, default=containers.mem_limit)


def warm_up(group, by=None, run_at: dt.datetime | None = None) -> Job:
    """Queue the warm-up of `group` (now, or at `run_at`); a warm-up now is refused (WarmupRefused) when memory
    does not allow it. A warm-up of the group not started yet is replaced."""
    now = timezone.now()
    run_at = max(run_at or now, now)
    if run_at <= now:
        check = capacity(group)
        if not check.ok:
            raise WarmupRefused(show(check.refusal()))
    with transaction.atomic():
        Job.objects.filter(kind=Job.Kind.WARM_UP, group=group, expanded=False, status=Job.Status.PENDING).update(
            status=Job.Status.CANCELLED, finished_at=now
        )
        job = Job.objects.create(kind=Job.Kind.WARM_UP, group=group, run_at=run_at, created_by=by)
        record(
            Kind.WARMUP,
            actor=by,
            job=job.pk,
            group=group.name,
            students=students(group).count(),
            run_at=timezone.localtime(run_at).isoformat(timespec="minutes"),
        )
    return job


def check_when_due(job: Job) -> str:
    """At the job's start: the refusal's message when memory does not allow it now, else ""."""
    check = capacity(job.group)
    return "" if check.ok else check.refusal()


# --- one student (the worker) ----------------------------------------------------------------------------
class Outcome(Exception):
    """How a student's warm-up ended when not done: status (JobItem.Status) and message (course/messages)."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _fresh(item: JobItem):
    """The account as it is now; raises Outcome(SKIPPED) when it may not get a server."""
    user = get_user_model().objects.filter(pk=item.student_id).first() if item.student_id else None
    if user is None:
        raise Outcome(JobItem.Status.SKIPPED, note(N_("The account was deleted.")))
    if not user.is_active:
        raise Outcome(JobItem.Status.SKIPPED, note(N_("The account is deactivated.")))
    if user.is_staff:
        raise Outcome(JobItem.Status.SKIPPED, note(N_("A staff account: warm-ups start students' servers only.")))
    return user


def _hub(method: str, path: str, body=None):
    try:
        return hub.api(method, path, body=body)
    except hub.HubError as exc:
        raise Outcome(JobItem.Status.FAILED, note(N_("The hub did not answer: %(error)s"), error=str(exc))) from None


def _failed(what: str, status: int, body) -> Outcome:
    message = (body or {}).get("message", "") if isinstance(body, dict) else ""
    return Outcome(
        JobItem.Status.FAILED, note(N_("The hub refused %(what)s: HTTP %(status)s %(message)s"), what=what,
                                    status=status, message=message)
    )  # fmt: skip


def ensure_hub_user(user) -> dict:
    """The hub user of `user`, made or brought in line as their login would leave it (accounts/hub.py
    `sync_hub_user`: the same groups, the staff role never for a student); returns its model."""
    try:
        hub.sync_hub_user(user)
    except hub.HubError as exc:
        raise Outcome(JobItem.Status.FAILED, note(N_("The hub did not answer: %(error)s"), error=str(exc))) from None
    status, model = _hub("GET", f"/users/{urllib.parse.quote(user.username)}")
    if status != 200:
        raise _failed(_("reading the hub user"), status, model)
    return model


def _server(model: dict) -> dict | None:
    return (model.get("servers") or {}).get("")


def warm_item(item: JobItem) -> tuple[dict, str]:
    """Start one student's server and wait until it answers; returns (result, message) or raises Outcome."""
    user = _fresh(item)
    model = ensure_hub_user(user)
    server = _server(model)
    if server and server.get("ready"):
        _grace(user.username)
        return {"state": "already running"}, note(N_("Already running."))
    started = time.monotonic()
    _fresh(item)  # right before the start: never for an account deactivated or deleted meanwhile
    try:
        hub.start_server(user.username)
    except hub.HubError as exc:
        raise Outcome(JobItem.Status.FAILED, note(N_("The hub did not start it: %(error)s"), error=str(exc))) from None
    deadline = started + settings.HUB.spawn_timeout_seconds + 15
    name = urllib.parse.quote(user.username)
    while True:
        status, model = _hub("GET", f"/users/{name}")
        server = _server(model) if status == 200 else None
        if server and server.get("ready"):
            break
        if not server or not server.get("pending"):
            raise Outcome(JobItem.Status.FAILED, note(N_("The server did not start; the hub's log says why.")))
        if time.monotonic() > deadline:
            raise Outcome(
                JobItem.Status.FAILED,
                note(N_("Not up after %(seconds)d s; the hub's log says why."), seconds=int(deadline - started)),
            )
        time.sleep(POLL_SECONDS)
    seconds = round(time.monotonic() - started, 1)
    try:
        _fresh(item)
    except Outcome:
        hub.stop_server(user.username)  # deactivated or deleted while it started
        raise
    _grace(user.username)
    return {"state": "started", "seconds": seconds}, note(N_("Started in %(seconds)s s."), seconds=seconds)


def _grace(username: str) -> None:
    """Keep the culler away until the grace ends (module rules); best effort: a refusal only loses the grace."""
    idle = settings.HUB.idle_timeout_seconds
    grace = settings.COURSE.warmup_grace_minutes * 60
    if not idle or grace <= idle:
        return
    stamp = timezone.now() + dt.timedelta(seconds=grace - idle)
    body = {"servers": {"": {"last_activity": stamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}}}
    try:
        hub.api("POST", f"/users/{urllib.parse.quote(username)}/activity", body=body)
    except hub.HubError:
        pass
