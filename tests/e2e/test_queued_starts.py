"""Servers asked for at portal login, many at once (issue 23): a class logging in within a minute.

Each queued start waits up to START_TIMEOUT_SECONDS for the hub's answer, which comes only once the server is up:
one after another, the last of 200 students' starts would be asked of the hub minutes late. The queue carries out
WARMUP_CONCURRENCY users' calls at once, so N starts are all asked within about N / WARMUP_CONCURRENCY rounds.
The hub here starts tests/e2e/slow_server.py, whose servers take longer to start than the queue waits, so that
every start costs the queue its full wait, as it does on a loaded machine.
"""

from __future__ import annotations

import sys

import pytest

from accounts.hub import START_TIMEOUT_SECONDS
from tests.e2e import flows, slow_server
from tests.e2e.test_lifecycle import shell
from tests.live import Stack

STUDENTS = 12
CONCURRENCY = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    command = ("--LocalHomeSpawner.cmd", sys.executable, "--LocalHomeSpawner.cmd", slow_server.__file__)
    env = {"WARMUP_CONCURRENCY": str(CONCURRENCY), "START_SERVER_AT_LOGIN": "true"}
    with Stack(tmp_path_factory.mktemp("slow-stack"), proxy="python", extra_env=env, hub_args=command) as running:
        yield running


def test_a_class_worth_of_queued_starts_is_asked_of_the_hub_at_once_not_one_after_another(stack):
    names = [flows.unique_username("cls") for _ in range(STUDENTS)]
    shell(
        stack,
        "from accounts.models import User\n"
        f"for name in {names!r}:\n"
        f"    User.objects.create_user(username=name, password={flows.PASSWORD!r})\n",
    )
    made = flows.wait_until(lambda: all(flows.hub_api(stack, f"/users/{n}").status_code == 200 for n in names), 30)
    assert made, flows.explain(stack, "the hub users were not made")

    # The logins' starts, queued in one transaction as a burst of logins queues them; the shell's portal carries
    # them out in its background thread, which this shell waits for.
    out = shell(
        stack,
        "import threading, time\nfrom django.db import transaction\nfrom accounts import hub\n"
        "with transaction.atomic():\n"
        f"    for name in {names!r}:\n"
        "        hub.queue_start(name)\n"
        "started = time.monotonic()\n"
        "worker = hub._worker\n"
        "worker and worker.join()\n"
        "left = [t.name for t in threading.enumerate() if t.name.startswith('hub-call')]\n"
        "from accounts.models import PendingHubCall\n"
        f"pending = PendingHubCall.objects.filter(username__in={names!r}).count()\n"
        "print(f'{time.monotonic() - started:.2f} {len(left)} {pending}')\n",
    ).stdout.split()
    took, threads_left, pending = float(out[-3]), int(out[-2]), int(out[-1])

    one_after_another = STUDENTS * START_TIMEOUT_SECONDS
    assert took < one_after_another / 2, (
        f"{STUDENTS} starts took {took:.1f} s (one after another: {one_after_another} s)"
    )
    assert threads_left == 0, "the queue's threads outlived the queue"
    states = {n: flows.hub_api(stack, f"/users/{n}/server").json() for n in names}
    asked = {n: s for n, s in states.items() if s.get("pending") == "spawn" or s.get("ready")}
    assert len(asked) == STUDENTS, flows.explain(stack, f"not every server was asked for: {states}")
    assert pending == 0, "calls were left in the queue"
