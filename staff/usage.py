"""What the usage page shows: every account, joined with the hub's view (servers, activity) and the memory
each running server uses, which the hub publishes (hubconfig/memory.py: from the Docker engine for containers,
from /proc for local servers).

Rules:
- The page never waits long: the user list and the memory figures are asked of the hub at the same time,
  each with a deadline (HUB_TIMEOUT); what does not answer in time shows as "unknown" with a note, never an
  error.
- The portal asks the hub as its own service (`portal`), with the scopes in hubconfig/config.py; it never
  talks to the Docker engine itself. The hub holds the socket (root-equivalent) anyway, and memory is only
  shown for servers the hub says run, so a direct path to the engine would add nothing when the hub is down.
- The hub caches the figures (hubconfig/memory.py CACHE_SECONDS): one stats call per container is too much to
  repeat on every page load for 200 students.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

log = logging.getLogger(__name__)

HUB_TIMEOUT = 1.5
MEMORY_PATH = "/cfps/memory"  # hubconfig/memory.py URL, under the hub's API
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="usage")


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
    memory: dict[str, int] | None = None  # None: no figures (the hub did not give them)
    memory_source: str = ""  # "docker", "local", or "" when no server runs
    memory_problem: str = ""  # the hub did not give the figures in time, or refused
    engine_problem: str = ""  # the hub gave what it had, but the engine was late or did not answer


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


def hub_memory(timeout: float = HUB_TIMEOUT) -> dict:
    """The hub's answer: {"source": ..., "memory": {username: bytes}, "problem": ...} (hubconfig/memory.py)."""
    return _hub_get(MEMORY_PATH, timeout)


def _problem(exc: BaseException, what: str) -> str:
    if isinstance(exc, concurrent.futures.TimeoutError):
        return "timeout"
    if isinstance(exc, urllib.error.HTTPError):
        log.warning("usage page: the hub refused %s: HTTP %s", what, exc.code)
        return f"HTTP {exc.code}"
    log.warning("usage page: the hub did not answer for %s: %s", what, exc)
    return "unreachable"


def snapshot() -> Snapshot:
    """Ask the hub for the users and the memory figures at the same time; what is late is reported, not awaited."""
    result = Snapshot()
    deadline = time.monotonic() + HUB_TIMEOUT + 0.2
    hub_future = _POOL.submit(hub_users)
    memory_future = _POOL.submit(hub_memory)
    try:
        result.hub = hub_future.result(timeout=HUB_TIMEOUT + 0.2)
    except (concurrent.futures.TimeoutError, urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        result.hub_problem = _problem(exc, "the user list")
    try:
        answer = memory_future.result(timeout=max(deadline - time.monotonic(), 0))
        result.memory = {str(name): int(value) for name, value in answer["memory"].items()}
        result.memory_source = answer.get("source", "")
        result.engine_problem = answer.get("problem", "")
    except (concurrent.futures.TimeoutError, urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        result.memory_problem = _problem(exc, "the memory figures")
    return result


def servers() -> tuple[dict[str, HubUser] | None, str]:
    """The hub's users alone, with the same deadline as `snapshot`: (users, "") or (None, the problem)."""
    future = _POOL.submit(hub_users)
    try:
        return future.result(timeout=HUB_TIMEOUT + 0.2), ""
    except (concurrent.futures.TimeoutError, urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        return None, _problem(exc, "the user list")


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
