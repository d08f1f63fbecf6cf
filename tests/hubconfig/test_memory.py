"""The hub's memory endpoint (hubconfig/memory.py) without a hub: its place in the config (the custom scope,
granted to the portal's role alone), the resident memory of a real process tree, and the cache that lets a
server started since the last refresh in at once. tests/e2e/test_staff_pages.py checks who the running hub
answers; tests/docker/test_usage_memory.py the figures of real containers."""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubconfig import memory
from hubconfig.config import apply_config
from portal.config import Config as AppConfig
from portal.config.env import Env
from tests.live import descendants, run_async

ALLOCATED = 96 * 1024**2
# A child that holds ALLOCATED bytes (touched, so resident) below a parent that holds little.
HOLDER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    f"'import time; x = bytearray({ALLOCATED}); print(1, flush=True); time.sleep(120)'], stdout=sys.stdout)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def process_tree():
    parent = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "1"  # the child has its memory
        yield parent.pid
    finally:
        for pid, _start in descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_the_portal_role_alone_gets_the_custom_memory_scope_and_the_hub_serves_it():
    c = Config()
    apply_config(c, AppConfig(Env({"SPAWNER": "local"})))
    assert c.JupyterHub.custom_scopes[memory.SCOPE] == memory.SCOPE_DEFINITION
    assert memory.SCOPE.startswith("custom:")
    holders = [role["name"] for role in c.JupyterHub.load_roles if memory.SCOPE in role.get("scopes", ())]
    assert holders == ["portal"]
    assert (memory.URL, memory.MemoryHandler) in c.JupyterHub.extra_handlers
    handlers = list(c.JupyterHub.extra_handlers)
    apply_config(c, AppConfig(Env({"SPAWNER": "local"})))  # set-only: applying twice changes nothing
    assert c.JupyterHub.extra_handlers == handlers


def test_the_memory_of_a_local_server_counts_its_whole_process_tree(process_tree):
    figures = memory.process_tree_memory({"lihua": process_tree, "gone": 2**22 + 12345})
    assert set(figures) == {"lihua"}  # a server whose process has ended has no figure
    assert ALLOCATED <= figures["lihua"] < ALLOCATED + 200 * 1024**2


def test_a_server_started_after_the_last_refresh_gets_a_figure_at_once(process_tree):
    figures = memory.MemoryFigures(cache_seconds=60)

    async def scenario():
        first = await figures.get({})
        assert first == {"source": "", "memory": {}, "problem": ""}
        started = time.monotonic()
        second = await figures.get({"lihua": SimpleNamespace(pid=process_tree)})
        assert time.monotonic() - started < memory.TIMEOUT + 0.5
        return second

    answer = run_async(scenario, timeout=30)
    assert answer["source"] == "local" and answer["problem"] == ""
    assert answer["memory"]["lihua"] >= ALLOCATED
