"""Two students log in through the portal and get their own containers (SPAWNER=docker); what each one can
see and do is checked from inside the containers, with `docker exec`.

The stack is the session's `docker_stack` (conftest.py); the culler has its own in test_culler.py.
"""

from __future__ import annotations

import json
import re

import pytest

from portal.config import containers
from tests.docker.conftest import (
    COMMON_GROUP,
    EXAMPLE,
    EXAMPLE_TEXT,
    GROUP_CPUS,
    GROUP_MEM,
    ONLY_A_GROUP,
    PIDS_LIMIT,
    RUN,
)
from tests.docker.inside import container_of, log_in_and_spawn, server_api, server_state, sh
from tests.e2e import flows


@pytest.fixture(scope="module")
def students(docker_stack, docker_client):
    """Two students, both in COMMON_GROUP, A also in ONLY_A_GROUP; each logged in through the portal with
    a running JupyterLab in a container."""
    a, b = f"ds{RUN}-alice", f"ds{RUN}-bob"
    flows.create_user(docker_stack, a, groups=(COMMON_GROUP, ONLY_A_GROUP))
    flows.create_user(docker_stack, b, groups=(COMMON_GROUP,))
    for username in (a, b):
        log_in_and_spawn(docker_stack, username)
        assert container_of(docker_client, username).status == "running", flows.explain(docker_stack, username)
    return a, b


def test_each_student_runs_in_an_own_container_as_a_non_root_user(docker_client, students):
    a, b = students
    assert container_of(docker_client, a).id != container_of(docker_client, b).id
    for username in students:
        code, output = sh(docker_client, username, "id -u; echo $CFPS_DATA_DIR; echo $PYTHONPATH")
        assert (code, output.splitlines()) == (0, ["1000", "/home/jovyan/data", "/home/jovyan/data/lib"]), output


def test_jupyterlab_lists_the_installed_extensions_and_installs_none(docker_stack, students):
    """LabApp.extension_manager=readonly, from the image (hubconfig/config.py, LAB_CONFIG): the page tells
    JupyterLab that its extension manager cannot install (JupyterLab's default, pypi, can)."""
    a, _ = students
    with flows.new_client(docker_stack) as client:
        flows.hub_login(docker_stack, client, a)
        page = client.get(f"/jupyter/user/{a}/lab")
    assert page.status_code == 200 and flows.path_of(page.url) == f"/jupyter/user/{a}/lab", flows.urls_of(page)
    data = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S)
    assert data, page.text[:500]
    manager = json.loads(data.group(1))["extensionManager"]
    assert manager["name"] == "read-only" and manager["can_install"] is False, manager


def test_data_folder_is_read_only(docker_client, students):
    a, _ = students
    code, listing = sh(docker_client, a, "ls ~/data")
    assert code == 0 and {"notebooks", "lib", "startup"} <= set(listing.split()), listing
    code, output = sh(docker_client, a, f"touch ~/data/probe-{RUN} && echo WROTE")
    assert code != 0 and "WROTE" not in output and "Read-only file system" in output, output
    mount = next(m for m in container_of(docker_client, a).attrs["Mounts"] if m["Destination"] == containers.DATA_MOUNT)
    assert mount["RW"] is False


def test_example_notebooks_are_copied_into_a_new_home(docker_client, students):
    for username in students:
        code, output = sh(docker_client, username, f"cat ~/notebooks/{EXAMPLE}")
        assert (code, output) == (0, EXAMPLE_TEXT)


def test_team_shared_folder_is_shared_between_students(docker_client, students):
    a, b = students
    assert sh(docker_client, a, f"echo from-a > ~/team-shared/note-{RUN}.txt")[0] == 0
    assert sh(docker_client, b, f"cat ~/team-shared/note-{RUN}.txt") == (0, "from-a")
    assert sh(docker_client, b, f"echo from-b >> ~/team-shared/note-{RUN}.txt")[0] == 0
    assert sh(docker_client, a, f"cat ~/team-shared/note-{RUN}.txt") == (0, "from-a\nfrom-b")


def test_a_student_cannot_see_another_students_home(docker_client, students):
    a, b = students
    assert sh(docker_client, b, f"echo secret > ~/private-{RUN}.txt")[0] == 0
    code, found = sh(docker_client, a, f"find / -path /proc -prune -o -name 'private-{RUN}*' -print 2>/dev/null")
    assert found == "", f"{a} can see {b}'s file: {found}"
    assert sh(docker_client, a, "ls /home") == (0, "jovyan")
    homes = {
        username: next(
            m["Name"]
            for m in container_of(docker_client, username).attrs["Mounts"]
            if m["Destination"] == containers.HOME
        )
        for username in students
    }
    assert homes[a] != homes[b]


def test_group_team_folder_is_visible_only_to_its_members(docker_client, students):
    a, b = students
    assert set(sh(docker_client, a, "ls ~/teams")[1].splitlines()) == {COMMON_GROUP, ONLY_A_GROUP}
    assert sh(docker_client, b, "ls ~/teams") == (0, COMMON_GROUP)
    assert sh(docker_client, a, f"echo for-the-class > ~/teams/{COMMON_GROUP}/plan.txt")[0] == 0
    assert sh(docker_client, b, f"cat ~/teams/{COMMON_GROUP}/plan.txt") == (0, "for-the-class")
    assert sh(docker_client, a, f"echo only-a > ~/teams/{ONLY_A_GROUP}/x.txt")[0] == 0
    b_mounts = {m.get("Name") for m in container_of(docker_client, b).attrs["Mounts"]}
    assert containers.group_volume(ONLY_A_GROUP) not in b_mounts
    code, output = sh(docker_client, b, f"find / -path /proc -prune -o -name x.txt -path '*{RUN}*' -print 2>/dev/null")
    assert output == "", output


def test_memory_and_cpu_limits_come_from_env_with_group_overrides(docker_client, students):
    a, b = students
    a_host, b_host = (container_of(docker_client, u).attrs["HostConfig"] for u in (a, b))
    assert a_host["Memory"] == GROUP_MEM, "A's group has a 768M override"
    assert a_host["CpuQuota"] == int(GROUP_CPUS * a_host["CpuPeriod"])
    assert b_host["Memory"] == 512 * 1024**2, "B gets MEM_LIMIT"
    assert b_host["CpuQuota"] == b_host["CpuPeriod"]
    assert a_host["Init"] is True and a_host["AutoRemove"] is True


def process_status(docker_client, username: str, pid: str) -> dict[str, str]:
    """The capability and privilege lines of /proc/<pid>/status in the user's container."""
    code, output = sh(docker_client, username, f"grep -E '^(Cap|NoNewPrivs)' /proc/{pid}/status")
    assert code == 0, output
    return dict(line.split(":\t", 1) for line in output.splitlines())


def server_pid(docker_client, username: str) -> str:
    """The process id of jupyterhub-singleuser (the child of docker-init, PID 1)."""
    script = "for p in /proc/[0-9]*; do grep -qs singleuser $p/cmdline && echo ${p#/proc/}; done | head -n 1"
    code, pid = sh(docker_client, username, script)
    assert code == 0 and pid.isdigit(), pid
    return pid


NO_CAPABILITIES = {f"Cap{kind}": "0000000000000000" for kind in ("Inh", "Prm", "Eff", "Bnd", "Amb")}


def test_servers_have_no_capabilities_and_cannot_gain_privileges(docker_client, students):
    # Before: jovyan's CapEff was already 0, but the bounding set held Docker's default 14 capabilities
    # (CapBnd a80425fb) and NoNewPrivs was 0, so the image's setuid programs (su, mount...) ran with them.
    for username in students:
        for pid in ("1", server_pid(docker_client, username), "self"):
            status = process_status(docker_client, username, pid)
            assert {k: v for k, v in status.items() if k.startswith("Cap")} == NO_CAPABILITIES, (pid, status)
            assert status["NoNewPrivs"] == "1", (pid, status)
        host = container_of(docker_client, username).attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["Privileged"] is False
        assert host["SecurityOpt"] == ["no-new-privileges"]


def test_the_server_reads_no_jupyter_configuration_and_no_python_from_the_home(docker_client, students):
    """Issue 20: configuration in the student's home must not change what their server serves. The server runs
    with JupyterHub's disable_user_config (~/.jupyter, ~/.local/share/jupyter ignored), and its Python adds no
    user site-packages (a ~/.local/lib/.../*.pth would run in the server): the image's Python is a venv."""
    username = students[0]
    pid = server_pid(docker_client, username)
    code, environ = sh(docker_client, username, f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert code == 0 and "JUPYTERHUB_DISABLE_USER_CONFIG=1" in environ.splitlines(), environ
    code, user_site = sh(docker_client, username, "python -c 'import site; print(site.ENABLE_USER_SITE)'")
    assert (code, user_site) == (0, "False"), user_site


def cgroup_value(docker_client, username: str, v1: str, v2: str) -> str:
    """A cgroup file as the container sees it (cgroup v1 layout first, then the unified v2 one)."""
    code, output = sh(docker_client, username, f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
    assert code == 0, output
    return output


def test_the_process_count_is_limited_and_a_fork_bomb_stops_at_it(docker_stack, docker_client, students):
    _, b = students
    assert container_of(docker_client, b).attrs["HostConfig"]["PidsLimit"] == PIDS_LIMIT
    assert cgroup_value(docker_client, b, "pids/pids.max", "pids.max") == str(PIDS_LIMIT)
    # Bounded: at most PIDS_LIMIT + 50 sleeps, each killed at once; the shell's own processes count too.
    bomb = (
        "import subprocess\n"
        "procs = []\n"
        "try:\n"
        f"    for _ in range({PIDS_LIMIT + 50}):\n"
        "        procs.append(subprocess.Popen(['sleep', '60']))\n"
        "    print('no limit', len(procs))\n"
        "except OSError as exc:\n"
        "    print('refused', len(procs), exc.errno)\n"
        "finally:\n"
        "    for proc in procs:\n"
        "        proc.kill()\n"
        "        proc.wait()\n"
    )
    code, output = sh(docker_client, b, f'python3 -c "{bomb}"')
    assert code == 0, output
    verdict, started, *errno = output.split()
    assert verdict == "refused" and errno == ["11"], output  # EAGAIN: the cgroup's pids.max
    assert int(started) < PIDS_LIMIT, output
    # The server survives its user's fork bomb.
    assert (server_state(docker_stack, b) or {}).get("ready"), flows.explain(docker_stack, "server died")
    assert sh(docker_client, b, "echo alive") == (0, "alive")


def test_memory_limit_is_what_the_container_sees(docker_client, students):
    a, b = students
    for username, limit in ((a, GROUP_MEM), (b, 512 * 1024**2)):
        seen = cgroup_value(docker_client, username, "memory/memory.limit_in_bytes", "memory.max")
        assert int(seen) == limit, (username, seen)


def test_disk_quota_that_the_engine_cannot_enforce_is_one_line_in_the_hub_log(docker_stack, docker_client, students):
    from userspace import isolation

    log = docker_stack.hub_log.read_text(errors="replace")
    unsupported = isolation.volume_quota_problem(docker_client, "1G")
    if unsupported:  # this machine: overlay2 on ext4
        lines = [line for line in log.splitlines() if "USER_DISK_QUOTA=1G is not enforced on the home volumes" in line]
        assert lines and "xfs" in lines[0], log[-3000:]
    # Servers start either way (the students fixture has both running).
    assert all(container_of(docker_client, u).status == "running" for u in students)


def test_files_in_the_home_and_edited_examples_survive_stop_and_start(docker_stack, docker_client, students):
    stack = docker_stack
    a, _ = students
    assert sh(docker_client, a, f"echo keep > ~/keep-{RUN}.txt && echo edited > ~/notebooks/{EXAMPLE}")[0] == 0
    first = container_of(docker_client, a).id

    stopped = server_api(stack, "DELETE", a)
    assert stopped.status_code in (202, 204), flows.explain(stack, f"stop: {stopped.status_code} {stopped.text}")
    assert flows.wait_until(lambda: server_state(stack, a) is None, 60), flows.explain(stack, "server not stopped")
    assert flows.wait_until(lambda: not [c for c in docker_client.containers.list(all=True) if c.id == first], 30), (
        "remove=True: the stopped container should be deleted"
    )

    started = server_api(stack, "POST", a)
    assert started.status_code in (201, 202), flows.explain(stack, f"start: {started.status_code} {started.text}")
    assert flows.wait_until(lambda: (server_state(stack, a) or {}).get("ready"), 60), flows.explain(stack, "no restart")
    assert container_of(docker_client, a).id != first
    assert sh(docker_client, a, f"cat ~/keep-{RUN}.txt") == (0, "keep")
    assert sh(docker_client, a, f"cat ~/notebooks/{EXAMPLE}") == (0, "edited"), "the start hook overwrote an edit"


def test_a_server_that_dies_while_starting_fails_its_start_at_once_saying_so(tmp_path, notebook_image, docker_client):
    # The hub's start returns only once the server answers (hubconfig/docker.py); JupyterHub does not check a
    # server whose start() is still running, so without watching the container a server that died at start
    # would keep its student waiting for the whole start timeout (115 s).
    import time

    import httpx

    from tests.docker.conftest import prepared_stack

    tiny = f"tiny-{RUN}"
    with prepared_stack(tmp_path, "dies", GROUP_LIMITS=f"{tiny}:8M:1") as stack:  # JupyterLab needs ~100 MB
        username = f"ds{RUN}-dies"
        flows.create_user(stack, username, groups=(tiny,))
        with flows.new_client(stack) as client:
            flows.hub_login(stack, client, username)
        headers = {"Authorization": f"token {stack.hub_admin_token()}"}
        started = time.monotonic()
        response = httpx.post(
            f"{stack.hub_api_url}/users/{username}/server", headers=headers, trust_env=False, timeout=60
        )

        def start_ended():
            user = flows.hub_api(stack, f"/users/{username}").json()
            return user["servers"] == {} and user["pending"] is None

        assert response.status_code >= 400 or flows.wait_until(start_ended, timeout=60), flows.explain(
            stack, response.text
        )
        assert time.monotonic() - started < 30, flows.explain(stack, "the failed start took as long as a timeout")
        assert f"the server of {username}" in stack.hub_log.read_text() and "stopped before it answered" in (
            stack.hub_log.read_text()
        ), flows.explain(stack, "the hub's log does not say why the start failed")
