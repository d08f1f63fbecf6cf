"""Warming up a group (预热服务器, course/warmup.py) on the real hub and Docker: the course worker starts each
student's server through the hub's API, 2 at a time. A student who never logged in to the hub gets a hub user
in the group's hub group and a container like a browser's start (same volumes, limits, labels); a running server
counts as already running; a student deactivated or deleted after the job listed them never gets a server; the
culler is told the grace; a warm-up that memory does not take is refused with the figures, and nothing queued.
A warmed student then logs in and is in JupyterLab at once."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.docker.conftest import MEM_LIMIT, RUN, docker_env
from tests.docker.inside import container_of, server_state
from tests.e2e import flows
from tests.e2e.test_hub_accounts import hub_user as hub_row
from tests.live import Stack

GROUP = f"warm-{RUN}"
HUGE = f"warm-huge-{RUN}"
IDLE = 600
GRACE_MINUTES = 30


@pytest.fixture(scope="module")
def warm_stack(tmp_path_factory, notebook_image):
    env = docker_env(
        "warm",
        WARMUP_CONCURRENCY="2",
        WARMUP_GRACE_MINUTES=str(GRACE_MINUTES),
        HUB_IDLE_TIMEOUT_SECONDS=str(IDLE),
        GROUP_LIMITS=f"{HUGE}:100000G:",
        USER_DISK_QUOTA="",
    )
    with Stack(tmp_path_factory.mktemp("warm-docker"), extra_env=env, worker=True) as stack:
        stack.manage("setup_volumes")
        yield stack


def shell(stack, script: str) -> str:
    return stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def hub_user(stack, name: str) -> dict | None:
    response = flows.hub_api(stack, f"/users/{name}")
    return response.json() if response.status_code == 200 else None


def mounts(container) -> list[tuple[str, str]]:
    return sorted((m.get("Name") or m["Source"], m["Destination"]) for m in container.attrs["Mounts"])


def test_a_group_is_warmed_through_the_hub_and_deactivated_students_get_no_server(warm_stack, docker_client):
    stack = warm_stack
    ann, bob, cat, dan = (f"{who}-{RUN}" for who in ("ann", "bob", "cat", "dan"))
    for name in (ann, bob, cat, dan):
        flows.create_user(stack, name, groups=(GROUP,))
    # bob logs in and starts his server the usual way: the warm-up finds it running, and his container is what a
    # start from the browser makes, to compare ann's with.
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, bob)
        flows.wait_for_lab(stack, client, bob, client.get("/jupyter/"))
    # ann has never logged in: her hub user is made ahead (accounts/hub.py), or by the warm-up; no server.
    assert not (hub_user(stack, ann) or {}).get("servers"), "ann has never started a server"

    # The job lists its four students while it is not due yet; then cat is deactivated and dan deleted, and only
    # then is it due: the worker must look again right before each start.
    job = int(
        shell(
            stack,
            "import datetime as dt\n"
            "from django.utils import timezone\n"
            "from django.contrib.auth.models import Group\n"
            "from accounts.models import User\n"
            "from course import jobs, warmup\n"
            f"job = warmup.warm_up(Group.objects.get(name={GROUP!r}), run_at=timezone.now() + dt.timedelta(hours=1))\n"
            "assert jobs.expand(job) == 4\n"
            f"u = User.objects.get(username={cat!r}); u.is_active = False; u.save()\n"
            f"User.objects.get(username={dan!r}).delete()\n"
            "type(job).objects.filter(pk=job.pk).update(run_at=timezone.now())\n"
            "print(job.pk)",
        )
    )
    started = time.monotonic()
    results = flows.wait_until(lambda: _finished(stack, job), timeout=120, interval=1)
    elapsed = time.monotonic() - started
    assert results[ann][0] == "done" and results[ann][1]["state"] == "started", results
    assert results[bob][0] == "done" and results[bob][1]["state"] == "already running", results
    assert results[cat][0] == "skipped" and "deactivated" in results[cat][2], results
    assert results[dan][0] == "skipped" and "deleted" in results[dan][2], results
    assert elapsed < 60, f"warm-up of one server took {elapsed:.0f} s"

    # ann: a hub user in the group's hub group, a running server, the same container as bob's browser start.
    row = hub_row(stack, ann)  # the hub's own record: the portal's token may not read groups
    assert row is not None and GROUP in row["groups"], row
    assert row["admin"] is False
    assert server_state(stack, ann)["ready"] is True
    warm, normal = container_of(docker_client, ann), container_of(docker_client, bob)
    assert [(n.replace("ann-", "X-"), m.replace("ann-", "X-")) for n, m in mounts(warm)] == [
        (n.replace("bob-", "X-"), m.replace("bob-", "X-")) for n, m in mounts(normal)
    ]
    assert any(GROUP in name for name, _ in mounts(warm)), "the group's team volume"
    for key in ("Memory", "NanoCpus", "PidsLimit", "CapDrop", "SecurityOpt", "NetworkMode", "ReadonlyRootfs"):
        assert warm.attrs["HostConfig"][key] == normal.attrs["HostConfig"][key], key
    assert warm.attrs["HostConfig"]["Memory"] == 512 * 1024**2 and MEM_LIMIT == "512M"
    assert warm.attrs["Config"]["Image"] == normal.attrs["Config"]["Image"]
    assert warm.attrs["Config"]["User"] == normal.attrs["Config"]["User"]

    # cat and dan: no server, and dan (deleted) no hub user either.
    assert hub_user(stack, cat) is None or not hub_user(stack, cat)["servers"]
    assert hub_user(stack, dan) is None
    for name in (cat, dan):
        with pytest.raises(Exception, match="Not Found|404|No such container"):
            container_of(docker_client, name)

    # The culler's grace: ann's server counts as active until the grace ends (warm-up + grace - idle timeout).
    last = server_state(stack, ann)["last_activity"]
    ahead = _seconds_from_now(last)
    expected = GRACE_MINUTES * 60 - IDLE
    assert expected - 120 < ahead <= expected + 5, (last, ahead)

    # The record: who asked, for which group; the job's end.
    kinds = shell(
        stack,
        "import json\nfrom audit.models import Event\n"
        "print(json.dumps([[e.kind, e.detail] for e in Event.objects.filter(kind__in=['warmup', 'course_job_finished'])"
        ".order_by('pk')]))",
    )
    events = json.loads(kinds)
    assert [k for k, _ in events][-2:] == ["warmup", "course_job_finished"], events
    assert events[-2][1]["group"] == GROUP and events[-1][1]["group"] == GROUP

    # ann logs in: her server is there, no spawn page on the way.
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, ann)
        response = client.get("/jupyter/")
        assert all("spawn-pending" not in url for url in flows.urls_of(response)), flows.urls_of(response)
        lab = flows.wait_for_lab(stack, client, ann, response)
        assert lab[-1].endswith(f"/jupyter/user/{ann}/lab")


def test_a_warm_up_that_memory_does_not_take_is_refused_with_the_figures(warm_stack):
    stack = warm_stack
    eve = f"eve-{RUN}"
    flows.create_user(stack, eve, groups=(HUGE,))
    out = shell(
        stack,
        "from django.contrib.auth.models import Group\n"
        "from course import warmup\n"
        "from course.models import Job\n"
        "try:\n"
        f"    warmup.warm_up(Group.objects.get(name={HUGE!r}))\n"
        "    print('queued')\n"
        "except warmup.WarmupRefused as refused:\n"
        f"    print(repr(str(refused)), Job.objects.filter(group__name={HUGE!r}).count())",
    )
    assert "queued" not in out
    # The figures: one server, its limit (GROUP_LIMITS), what it may use, what the host has available.
    assert "1" in out and "100000.0 GB" in out and re.search(r"\d+(\.\d)? (GB|MB)", out.split("100000.0 GB")[-1]), out
    assert out.endswith(" 0"), out
    assert not (hub_user(stack, eve) or {}).get("servers"), "a refused warm-up started a server"


def _finished(stack, job: int) -> dict | None:
    out = shell(
        stack,
        "import json\nfrom course.models import Job\n"
        f"job = Job.objects.get(pk={job})\n"
        "print(json.dumps(None if job.status != 'done' else "
        "{i.username: [i.status, i.result, i.message] for i in job.items.all()}))",
    )
    return json.loads(out)


def _seconds_from_now(stamp: str) -> float:
    import datetime as dt

    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (when - dt.datetime.now(dt.UTC)).total_seconds()
