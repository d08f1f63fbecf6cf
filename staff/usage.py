"""What the usage page shows: every account, joined with the hub's view (servers, activity) and, when the
users' servers are Docker containers, the memory the engine reports for each.

Rules:
- The page never waits long: the hub and the engine are asked at the same time, each with a deadline
  (HUB_TIMEOUT, ENGINE_TIMEOUT); what does not answer in time shows as "unknown" with a note, never an error.
- The engine's figures are cached for ENGINE_CACHE_SECONDS: one stats call per container, made in
  parallel, is too much to repeat on every page load for 200 students.
- The portal asks the hub as its own service (`portal`), with the read scopes in hubconfig/config.py.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

log = logging.getLogger(__name__)

HUB_TIMEOUT = 1.5
ENGINE_TIMEOUT = 1.5
ENGINE_CACHE_SECONDS = 15
CONTAINER_PREFIX = "jupyter-"  # DockerSpawner's default name_template: jupyter-<escaped username>
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
# Two pools: the per-container stats calls (up to one per student) must never queue ahead of the next
# page load's hub request.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="usage")
_STATS_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="usage-stats")


@dataclass
class HubUser:
    last_activity: datetime | None = None
    server_running: bool = False
    server_pending: str | None = None
    server_started: datetime | None = None
    server_activity: datetime | None = None


@dataclass
class Snapshot:
    hub: dict[str, HubUser] | None = None  # None: the hub did not answer
    hub_problem: str = ""
    memory: dict[str, int] | None = None  # None: no Docker (or it did not answer)
    memory_problem: str = ""
    notes: list[str] = field(default_factory=list)


def _parse_time(value):
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _hub_get(path: str, timeout: float):
    request = urllib.request.Request(
        settings.HUB_API_URL + path,
        headers={
            "Authorization": f"token {settings.HUB_API_TOKEN}",
            "Accept": "application/jupyterhub-pagination+json",
        },
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def hub_users(timeout: float = HUB_TIMEOUT) -> dict[str, HubUser]:
    """Every hub user by name, page by page (the hub returns at most 200 per request)."""
    users, offset, deadline = {}, 0, time.monotonic() + timeout
    while True:
        page = _hub_get(f"/users?offset={offset}&limit=200", max(deadline - time.monotonic(), 0.1))
        for item in page["items"]:
            server = (item.get("servers") or {}).get("") or {}
            users[item["name"]] = HubUser(
                last_activity=_parse_time(item.get("last_activity")),
                server_running=bool(server.get("ready")),
                server_pending=server.get("pending"),
                server_started=_parse_time(server.get("started")),
                server_activity=_parse_time(server.get("last_activity")),
            )
        following = (page.get("_pagination") or {}).get("next")
        if not following:
            return users
        offset = following["offset"]


_engine_cache: tuple[float, dict[str, int]] | None = None
_engine_lock = threading.Lock()


def _container_memory(container) -> int | None:
    stats = container.stats(stream=False, one_shot=True)  # one_shot: no second sample, no 1 s wait
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    # What `docker stats` shows: usage minus the page cache the kernel can drop at once.
    inactive = (memory.get("stats") or {}).get("inactive_file", 0)
    return max(usage - inactive, 0)


def engine_memory(timeout: float = ENGINE_TIMEOUT) -> dict[str, int]:
    """Memory in use per username, for every running notebook container; cached briefly."""
    global _engine_cache
    with _engine_lock:
        if _engine_cache and time.monotonic() - _engine_cache[0] < ENGINE_CACHE_SECONDS:
            return _engine_cache[1]
    import docker
    import escapism

    client = docker.from_env(timeout=timeout)
    try:
        containers = client.containers.list(sparse=True, filters={"name": CONTAINER_PREFIX, "status": "running"})
        names = {}
        for container in containers:
            name = (container.attrs.get("Names") or [""])[0].lstrip("/")
            if name.startswith(CONTAINER_PREFIX):
                names[container] = escapism.unescape(name[len(CONTAINER_PREFIX) :], escape_char="-")
        futures = {_STATS_POOL.submit(_container_memory, c): username for c, username in names.items()}
        done, _ = concurrent.futures.wait(futures, timeout=timeout)
        memory = {}
        for future in done:
            if future.exception() is None and future.result() is not None:
                memory[futures[future]] = future.result()
    finally:
        client.close()
    with _engine_lock:
        _engine_cache = (time.monotonic(), memory)
    return memory


def engine_configured() -> bool:
    """A Docker engine to ask: DOCKER_HOST, or the default socket. Without one, no memory column."""
    import os

    return bool(os.environ.get("DOCKER_HOST")) or os.path.exists("/var/run/docker.sock")


def snapshot() -> Snapshot:
    """Ask the hub and (with Docker) the engine at the same time; whatever is late is reported, not awaited."""
    result = Snapshot()
    hub_future = _POOL.submit(hub_users)
    engine_future = _POOL.submit(engine_memory) if engine_configured() else None
    try:
        result.hub = hub_future.result(timeout=HUB_TIMEOUT + 0.2)
    except concurrent.futures.TimeoutError:
        result.hub_problem = "timeout"
    except urllib.error.HTTPError as exc:
        result.hub_problem = f"HTTP {exc.code}"
        log.warning("usage page: the hub refused the user list: HTTP %s", exc.code)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        result.hub_problem = "unreachable"
        log.warning("usage page: the hub did not answer: %s", exc)
    if engine_future is not None:
        try:
            result.memory = engine_future.result(timeout=ENGINE_TIMEOUT + 0.2)
        except concurrent.futures.TimeoutError:
            result.memory_problem = "timeout"
        except Exception as exc:  # the Docker SDK raises many kinds; the page must still render
            # The socket is root-equivalent, so in production the portal is usually not allowed to use it.
            denied = "Permission denied" in str(exc) or isinstance(exc, PermissionError)
            result.memory_problem = "no-access" if denied else "unreachable"
            log.warning("usage page: no memory figures from the Docker engine: %s", exc)
    return result


SORTS = {
    "username": lambda row: row["user"].username,
    "last_login": lambda row: row["user"].last_login,
    "running": lambda row: row["running"],
    "started": lambda row: row["started"],
    "activity": lambda row: row["activity"],
    "memory": lambda row: row["memory"],
}


def rows(data: Snapshot, group: str = "", order: str = "username") -> list[dict]:
    """One row per account (of `group`, if given), joined with the hub's and the engine's figures, sorted by
    `order` (a SORTS key, `-` first for descending); rows without a value go last either way."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.order_by("username").prefetch_related("groups")
    if group:
        users = users.filter(groups__name=group)
    result = []
    for user in users:
        hub_user = data.hub.get(user.username) if data.hub is not None else None
        running = bool(hub_user and hub_user.server_running)
        result.append(
            {
                "user": user,
                "groups": ", ".join(g.name for g in user.groups.all()),
                "running": running,
                "pending": hub_user.server_pending if hub_user else None,
                "started": hub_user.server_started if hub_user else None,
                "activity": (hub_user.server_activity or hub_user.last_activity) if hub_user else None,
                "memory": (data.memory or {}).get(user.username) if running else None,
            }
        )
    key = SORTS.get(order.lstrip("-"), SORTS["username"])
    known = [row for row in result if key(row) is not None]
    unknown = [row for row in result if key(row) is None]
    return sorted(known, key=key, reverse=order.startswith("-")) + unknown
