"""The memory each running server uses, published by the hub at /jupyter/hub/api/cfps/memory for the
staff usage page (staff/usage.py).

Why the hub: it starts the containers and holds the Docker socket. The portal, the part facing the Internet,
has no socket in production (the socket is root-equivalent), so it asks the hub, as it does for the users.

Rules:
- Only a token with the custom scope SCOPE gets an answer; hubconfig/config.py grants it to the portal's
  service role alone. No token, a student's token or a token without the scope: 403, as the hub's own API.
- The answer is {"source": "docker" | "local" | "", "memory": {username: bytes}, "problem": "" | "timeout" |
  "unreachable"}. docker: the container's usage minus its inactive page cache, as `docker stats` shows it;
  local: the resident memory of the server's process tree (from /proc), a figure that counts shared pages
  in every process; "": no server runs.
- The hub's event loop never waits on the engine: the figures are gathered in a thread pool, one stats call
  per container, in parallel, with a deadline (TIMEOUT, shorter than the portal's own wait for the hub);
  whatever is late is left out and the answer says "timeout". Figures are kept CACHE_SECONDS (a server
  started since is asked about at once), and requests that arrive during a refresh share it, so 200 students
  cost one round of stats calls per CACHE_SECONDS whatever the number of staff looking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time

from jupyterhub.apihandlers.base import APIHandler
from tornado import web
from tornado.log import app_log

SCOPE = "custom:cfps:read:memory"
SCOPE_DEFINITION = {"description": "Read the memory each running server uses (the portal's staff usage page)."}
URL = r"/api/cfps/memory"  # under the hub's prefix: /jupyter/hub/api/cfps/memory
TIMEOUT = 1.0
CACHE_SECONDS = 15
# A pool of its own: a slow engine must never hold up DockerSpawner's own thread pool (spawns and stops).
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="cfps-memory")


def container_memory(client, container_id: str) -> int | None:
    """What `docker stats` shows for one container: usage minus the page cache the kernel can drop at once."""
    stats = client.api.stats(container_id, stream=False, one_shot=True)  # one_shot: no second sample, no wait
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:  # the container stopped between the listing and this call
        return None
    inactive = (memory.get("stats") or {}).get("inactive_file", 0)
    return max(usage - inactive, 0)


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # the process ended while we looked
                continue
    return parents


def process_tree_memory(roots: dict[str, int]) -> dict[str, int]:
    """Resident memory of each root process and everything below it (kernels, terminals), by name."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    page = os.sysconf("SC_PAGE_SIZE")
    result = {}
    for name, root in roots.items():
        if root not in parents:
            continue
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
        result[name] = total
    return result


class MemoryFigures:
    """The figures of the last CACHE_SECONDS, refreshed by at most one gathering at a time."""

    def __init__(self, timeout: float = TIMEOUT, cache_seconds: float = CACHE_SECONDS):
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, dict] | None = None
        self._asked: set[str] = set()  # the servers the cached answer asked about
        self._refresh: asyncio.Future | None = None
        self._client = None
        self._client_lock = threading.Lock()

    def docker_client(self):
        """One Docker SDK client, made on first use in a worker thread (it asks the engine for its version)."""
        with self._client_lock:
            if self._client is None:
                import docker

                # The engine DockerSpawner uses: both read DOCKER_HOST and friends from the hub's environment.
                self._client = docker.from_env(timeout=self.timeout)
            return self._client

    def _docker_memory(self, container_id: str) -> int | None:
        return container_memory(self.docker_client(), container_id)

    async def get(self, servers: dict) -> dict:
        """The answer for `servers` ({username: spawner} of the running servers). Within CACHE_SECONDS only
        servers not asked about yet (started since) are gathered, and added to the cached answer."""
        if self._refresh is not None and not self._refresh.done():
            # shield: a client that goes away must not cancel the refresh the others are waiting for
            await asyncio.shield(self._refresh)
        fresh = self._cached is not None and time.monotonic() - self._cached[0] < self.cache_seconds
        todo = {name: s for name, s in servers.items() if not fresh or name not in self._asked}
        if todo or not fresh:
            self._refresh = asyncio.ensure_future(self._update(todo, merge=fresh))
            await asyncio.shield(self._refresh)
        return self._cached[1]

    async def _update(self, servers: dict, merge: bool) -> None:
        answer = await self._gather(servers)
        if merge:
            cached_at, old = self._cached
            answer = {
                "source": old["source"] or answer["source"],
                "memory": {**old["memory"], **answer["memory"]},
                "problem": answer["problem"] or old["problem"],
            }
            self._asked |= set(servers)
        else:
            cached_at, self._asked = time.monotonic(), set(servers)
        self._cached = (cached_at, answer)

    async def _gather(self, servers: dict) -> dict:
        containers = {name: s.container_id for name, s in servers.items() if getattr(s, "container_id", "")}
        processes = {name: s.pid for name, s in servers.items() if name not in containers and getattr(s, "pid", 0)}
        answer = {"source": "docker" if containers else "local" if processes else "", "memory": {}, "problem": ""}
        calls = {
            asyncio.wrap_future(_POOL.submit(self._docker_memory, container_id)): name
            for name, container_id in containers.items()
        }
        if processes:
            calls[asyncio.wrap_future(_POOL.submit(process_tree_memory, processes))] = None
        if calls:
            done, late = await asyncio.wait(calls, timeout=self.timeout)
            failed = 0
            for call in done:
                if call.exception() is not None:
                    failed += 1
                elif calls[call] is None:
                    answer["memory"].update(call.result())
                elif call.result() is not None:
                    answer["memory"][calls[call]] = call.result()
            if late:
                answer["problem"] = "timeout"
            elif failed and not answer["memory"]:
                answer["problem"] = "unreachable"
                error = next(call.exception() for call in done if call.exception() is not None)
                app_log.warning("usage page: no memory figures: %s", error)
        return answer


FIGURES = MemoryFigures()


def running_servers(users) -> dict:
    """{username: spawner} of every running default server (named servers are not used here)."""
    running = {}
    for user in list(users.values()):
        spawner = user.spawners.get("")  # .get: the hub's spawner dict makes a spawner on a missing key
        if spawner is not None and spawner.ready:
            running[user.name] = spawner
    return running


class MemoryHandler(APIHandler):
    """GET /hub/api/cfps/memory: the figures, for tokens with SCOPE only."""

    async def get(self):
        # The hub's @needs_scope cannot name a custom scope at import time (custom scopes are defined when the
        # hub starts, after this module is imported by the config), so the check is written out.
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if SCOPE not in self.expanded_scopes:
            raise web.HTTPError(403, f"Action is not authorized with current scopes; requires {SCOPE}")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(await FIGURES.get(running_servers(self.users))))
