"""SPAWNER=swarm on a one-node Docker Swarm: two students log in through the portal and each gets a Swarm
service with the docker spawner's image, volumes, limits and confinement; then SWARM_VOLUMES=shared puts
the homes in DATA_ROOT, where every node of a cluster would find them.

The engine joins a swarm for this module only (`docker swarm init` on 127.0.0.1, its routing mesh removed
since host-network services need none) unless it already was in one, which is then left as it was; the
services, volumes and networks this module made are removed, so the other Docker tests see the engine as
before.
"""

from __future__ import annotations

import pytest
from dockerspawner import DockerSpawner

from hubconfig.swarm import NO_NEW_PRIVILEGES_API, api_at_least
from portal.config import containers
from tests.docker.conftest import (
    COMMON_GROUP,
    EXAMPLE,
    EXAMPLE_TEXT,
    GROUP_CPUS,
    GROUP_MEM,
    IMAGE,
    ONLY_A_GROUP,
    PIDS_LIMIT,
    RUN,
    prepared_stack,
)
from tests.docker.inside import log_in_and_spawn, server_api, server_state
from tests.e2e import flows
from tests.live import run_async
from userspace.volumes import ROOT_MODE, bind_options

MEM = 512 * 1024**2  # conftest's MEM_LIMIT
SWARM_NETWORKS = ("ingress", "docker_gwbridge")  # what `docker swarm init` adds to the engine


def service_name(username: str) -> str:
    return "jupyter-" + DockerSpawner._escape(username)


def home_volume(username: str) -> str:
    return containers.USER_VOLUME_TEMPLATE.format(username=DockerSpawner._escape(username))


def services_of_this_run(client) -> list:
    return [service for service in client.services.list() if RUN in service.name]


def remove_services(client) -> None:
    for service in services_of_this_run(client):
        service.remove()
    # The task containers go a moment later; their volumes cannot be removed before.
    flows.wait_until(lambda: not [c for c in client.containers.list(all=True) if RUN in c.name and ".1." in c.name], 60)


@pytest.fixture(scope="module")
def swarm(docker_client):
    """This engine as a swarm manager; (NodeID, Engine API version)."""
    state = docker_client.info()["Swarm"]
    joined = state["LocalNodeState"] != "active"
    if joined:
        networks_before = {network.name for network in docker_client.networks.list()}
        docker_client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        # The routing mesh (an overlay network and its load balancer) serves published ports; host-network
        # services publish none, and without it nothing of the swarm sits between other tests' containers.
        docker_client.networks.get("ingress").remove()
        state = docker_client.info()["Swarm"]
    elif not state.get("ControlAvailable"):
        message = "this Docker engine is a swarm worker; the swarm test needs a manager (or no swarm at all)"
        pytest.skip(message)
    try:
        yield state["NodeID"], docker_client.api.api_version
    finally:
        remove_services(docker_client)
        if joined:
            docker_client.swarm.leave(force=True)
            for name in SWARM_NETWORKS:
                if name not in networks_before:
                    for network in docker_client.networks.list(names=[name]):
                        network.remove()


def task_container(client, username: str):
    """The container of the user's running task."""
    tasks = [
        task
        for task in client.services.get(service_name(username)).tasks()
        if task["Status"]["State"] == "running" and task["DesiredState"] == "running"
    ]
    assert len(tasks) == 1, tasks
    return client.containers.get(tasks[0]["Status"]["ContainerStatus"]["ContainerID"])


def sh(client, username: str, script: str) -> tuple[int, str]:
    result = task_container(client, username).exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode("utf-8", "replace").strip()


def container_spec(client, username: str) -> dict:
    return client.services.get(service_name(username)).attrs["Spec"]["TaskTemplate"]


def mounts_by_target(spec: dict) -> dict[str, dict]:
    return {mount["Target"]: mount for mount in spec["ContainerSpec"]["Mounts"]}


def stop_and_wait_for_removal(stack, client, username: str) -> None:
    assert server_api(stack, "DELETE", username).status_code in {202, 204}
    flows.wait_until(lambda: server_state(stack, username) is None, 60)
    flows.wait_until(lambda: not client.services.list(filters={"name": service_name(username)}), 30)


@pytest.fixture(scope="class")
def one_node_stack(tmp_path_factory, notebook_image, swarm):
    """SWARM_VOLUMES=local (the default): the nodes' own Docker volumes, with the docker spawner's names."""
    with prepared_stack(tmp_path_factory.mktemp("swarm-stack"), "swarm", SPAWNER="swarm") as running:
        yield running


@pytest.fixture(scope="class")
def students(one_node_stack, docker_client):
    a, b = f"sw{RUN}-alice", f"sw{RUN}-bob"
    flows.create_user(one_node_stack, a, groups=(COMMON_GROUP, ONLY_A_GROUP))
    flows.create_user(one_node_stack, b, groups=(COMMON_GROUP,))
    for username in (a, b):
        log_in_and_spawn(one_node_stack, username)  # JupyterLab answered through the hub's proxy on localhost
        assert task_container(docker_client, username).status == "running", flows.explain(one_node_stack, username)
    return a, b


class TestOneNode:
    """Two students on a one-node swarm; the stack lives as long as this class."""

    def test_the_hub_runs_each_server_as_a_swarm_service_of_the_notebook_image(
        self, one_node_stack, docker_client, students, swarm
    ):
        node_id, _ = swarm
        log = one_node_stack.hub_log.read_text(errors="replace")
        assert "Spawner: swarm (SPAWNER=swarm in .env)" in log
        for username in students:
            spec = container_spec(docker_client, username)
            assert spec["ContainerSpec"]["Image"] == IMAGE
            assert spec["Placement"]["Constraints"] == [f"node.id=={node_id}"]
            assert spec["RestartPolicy"]["Condition"] == "none"
            assert [docker_client.networks.get(n["Target"]).name for n in spec["Networks"]] == ["host"]
            assert task_container(docker_client, username).attrs["HostConfig"]["NetworkMode"] == "host"
        assert task_container(docker_client, students[0]).id != task_container(docker_client, students[1]).id

    def test_mounts_are_the_docker_spawners_volumes(self, one_node_stack, docker_client, students):
        a, b = students
        data, team = one_node_stack.env["DOCKER_DATA_VOLUME"], one_node_stack.env["DOCKER_TEAM_VOLUME"]
        teams = f"{containers.TEAMS_MOUNT}/"
        for username, groups in ((a, (COMMON_GROUP, ONLY_A_GROUP)), (b, (COMMON_GROUP,))):
            mounts = {
                target: (mount["Source"], mount["Type"], bool(mount.get("ReadOnly")))
                for target, mount in mounts_by_target(container_spec(docker_client, username)).items()
            }
            assert mounts == {
                containers.HOME: (home_volume(username), "volume", False),
                containers.DATA_MOUNT: (data, "volume", True),
                containers.TEAM_MOUNT: (team, "volume", False),
                **{teams + containers.group_folder(g): (containers.group_volume(g), "volume", False) for g in groups},
            }
        assert sh(docker_client, a, f"touch ~/data/probe-{RUN} && echo WROTE")[1].endswith("Read-only file system")
        assert sh(docker_client, a, f"cat ~/notebooks/{EXAMPLE}") == (0, EXAMPLE_TEXT)
        assert sh(docker_client, a, f"echo from-a > ~/team-shared/swarm-{RUN}.txt")[0] == 0
        assert sh(docker_client, b, f"cat ~/team-shared/swarm-{RUN}.txt") == (0, "from-a")
        assert sh(docker_client, b, f"ls ~/teams; echo private > ~/own-{RUN}.txt") == (0, COMMON_GROUP)
        assert sh(docker_client, a, f"cat ~/own-{RUN}.txt")[0] != 0, "a sees b's home"

    def test_memory_cpu_and_pids_limits_with_group_overrides(self, docker_client, students):
        a, b = students
        for username, mem, cpus in ((a, GROUP_MEM, GROUP_CPUS), (b, MEM, 1.0)):
            limits = container_spec(docker_client, username)["Resources"]["Limits"]
            assert limits == {"MemoryBytes": mem, "NanoCPUs": int(cpus * 1e9), "Pids": PIDS_LIMIT}
            host = task_container(docker_client, username).attrs["HostConfig"]
            assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (mem, int(cpus * 1e9), PIDS_LIMIT)
            code, seen = sh(docker_client, username, "cat /sys/fs/cgroup/pids/pids.max || cat /sys/fs/cgroup/pids.max")
            assert seen.splitlines()[-1] == str(PIDS_LIMIT)

    def test_no_capabilities_and_no_new_privileges_as_far_as_the_engine_carries_them(
        self, one_node_stack, docker_client, students, swarm
    ):
        _, api_version = swarm
        carried = api_at_least(api_version, NO_NEW_PRIVILEGES_API)
        log = one_node_stack.hub_log.read_text(errors="replace")
        for username in students:
            spec = container_spec(docker_client, username)["ContainerSpec"]
            assert spec["CapabilityDrop"] == ["ALL"] and spec["Init"] is True
            code, status = sh(docker_client, username, "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status")
            fields = dict(line.split(":\t", 1) for line in status.splitlines())
            assert fields["CapBnd"] == fields["CapEff"] == "0000000000000000", status
            assert sh(docker_client, username, "id -u") == (0, "1000")
            # What the README and the hub's log say is what the kernel shows.
            assert fields["NoNewPrivs"] == ("1" if carried else "0"), (api_version, status)
        assert ("does not enforce here: no-new-privileges" in log) is not carried, log[-3000:]
        # conftest sets USER_DISK_QUOTA; a service cannot cap the writable layer on any engine
        assert "does not enforce here: the size of the writable layer (USER_DISK_QUOTA)" in log
        assert "USER_DISK_QUOTA on the homes" not in log, "local volumes: the docker spawner's quota applies"

    def test_servers_see_the_data_folder_contract_and_their_hub(self, docker_client, students):
        a, _ = students
        env = dict(line.split("=", 1) for line in container_spec(docker_client, a)["ContainerSpec"]["Env"])
        assert env["CFPS_DATA_DIR"] == containers.DATA_MOUNT and env["JUPYTERHUB_USER"] == a
        assert env["CFPS_DATASET_URL"].startswith(f"sqlite:///{containers.DATA_MOUNT}/")
        assert env["JUPYTERHUB_API_URL"].startswith("http://127.0.0.1:")

    def test_stopping_a_server_removes_its_service_and_keeps_its_home(self, one_node_stack, docker_client, students):
        a, b = students
        assert sh(docker_client, a, f"echo kept > ~/kept-{RUN}.txt")[0] == 0
        for username in students:
            stop_and_wait_for_removal(one_node_stack, docker_client, username)
        assert docker_client.volumes.get(home_volume(a))
        log_in_and_spawn(one_node_stack, a)
        assert sh(docker_client, a, f"cat ~/kept-{RUN}.txt") == (0, "kept")
        stop_and_wait_for_removal(one_node_stack, docker_client, a)


def test_shared_volumes_put_homes_and_group_folders_in_data_root(tmp_path, notebook_image, docker_client, swarm):
    """SWARM_VOLUMES=shared: each mount carries the local driver's options for its DATA_ROOT folder, so the
    node that runs the task (here the only one) makes the same volume; files land in DATA_ROOT."""
    group = f"shared-{RUN}"
    username = f"sw{RUN}-carol"
    with prepared_stack(tmp_path, "swshared", SPAWNER="swarm", SWARM_VOLUMES="shared") as stack:
        data_root = tmp_path / "var" / "volumes"
        flows.create_user(stack, username, groups=(group,))
        log_in_and_spawn(stack, username)
        home = data_root / "volumes" / home_volume(username)
        expected = {
            containers.HOME: home,
            containers.DATA_MOUNT: data_root / "data",
            containers.TEAM_MOUNT: data_root / "team-shared",
            f"{containers.TEAMS_MOUNT}/{group}": data_root / "volumes" / containers.group_volume(group),
        }
        mounts = mounts_by_target(container_spec(docker_client, username))
        assert {target: mount["VolumeOptions"]["DriverConfig"] for target, mount in mounts.items()} == {
            target: {"Name": "local", "Options": bind_options(folder)} for target, folder in expected.items()
        }
        # The hub gave the new folders to the notebook user before the server started; the home then took
        # the image's /home/jovyan mode as Docker copied the image's files in, as a Docker-made home does.
        team_folder = expected[f"{containers.TEAMS_MOUNT}/{group}"]
        for folder, mode in ((home, 0o755), (team_folder, ROOT_MODE)):
            stat = folder.stat()
            assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (1000, 100, mode), folder
        assert (home / ".bashrc").exists()
        assert sh(docker_client, username, f"echo on-shared > ~/probe-{RUN}.txt && cat ~/data/notebooks/{EXAMPLE}") == (
            0,
            EXAMPLE_TEXT,
        )
        assert (home / f"probe-{RUN}.txt").read_text() == "on-shared\n"
        assert (home / f"probe-{RUN}.txt").stat().st_uid == 1000
        # The node made the volume from the mount's options: the same folder, whichever node it is.
        assert docker_client.volumes.get(home_volume(username)).attrs["Options"] == bind_options(home)
        stop_and_wait_for_removal(stack, docker_client, username)

        # A home made by Docker before (SPAWNER=docker, or swarm with local volumes) would shadow the shared
        # folder on this node: the start stops, and the hub's log gives the operator the way out, instead of
        # the student finding an empty home.
        other = f"sw{RUN}-dave"
        flows.create_user(stack, other)
        docker_client.volumes.create(home_volume(other))
        with flows.new_client(stack) as client:
            flows.hub_login(stack, client, other)
            client.get("/jupyter/hub/spawn")
            page = flows.wait_until(
                lambda: (r := client.get(f"/jupyter/hub/spawn-pending/{other}")).status_code == 500 and r, 60
            )
        assert page and "Traceback" not in page.text, flows.explain(stack, f"{other}'s start did not fail")
        assert f"docker volume rm {home_volume(other)}" in stack.hub_log.read_text(errors="replace")
        assert not docker_client.services.list(filters={"name": service_name(other)})


def test_a_task_its_node_refuses_fails_the_start_with_the_nodes_reason(docker_client, swarm):
    """Restart condition none: no retry comes, so waiting for one (SwarmSpawner's way) would last until the
    spawn timeout; the start ends at once with what the node said."""
    import asyncio
    from types import SimpleNamespace

    from docker.types import ContainerSpec, RestartPolicy, TaskTemplate

    from hubconfig.swarm import CfpsSwarmSpawner

    name = f"jupyter-sw{RUN}-refused"
    missing_image = f"cfps-no-such-image-{RUN}:latest"
    template = TaskTemplate(
        ContainerSpec(missing_image, command=["true"]),
        restart_policy=RestartPolicy(condition="none"),
        networks=["host"],
    )
    docker_client.api.create_service(template, name=name)
    spawner = CfpsSwarmSpawner(user=SimpleNamespace(name=f"sw{RUN}-refused", groups=[], url="/"))
    spawner.object_name = name
    with pytest.raises(RuntimeError, match="did not start on its node: .*No such image"):
        run_async(lambda: asyncio.wait_for(spawner.start_object(), 60))
