"""hubconfig/swarm.py against a plain traitlets Config: SPAWNER=swarm gets the docker spawner's containers
(tests/docker/test_swarm.py runs the same configuration on a real one-node swarm)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from hubconfig.config import HubConfigError, apply_config
from hubconfig.swarm import CfpsSwarmSpawner, service_settings
from portal.config import Config as AppConfig
from portal.config.env import Env
from tests.hubconfig.test_config import PROD_SECRETS

TEST_NET_IP = "192.0.2.10"  # RFC 5737 documentation addresses: only ever config values here
NFS_IP = "192.0.2.20"
# The container settings every spawner of ours shares; the network ones differ by design.
NETWORK_KEYS = {"network_name", "ip", "use_internal_ip", "environment"}


def configured(spawner: str, **values) -> Config:
    c = Config()
    env = {"SPAWNER": spawner, "DOCKER_NETWORK": "host", "GROUP_LIMITS": "class-a:3G:2", "MEM_LIMIT": "1G", **values}
    apply_config(c, AppConfig(Env(env)))
    return c


def swarm_spawner(c: Config, username: str = "alice", groups: tuple[str, ...] = ()) -> CfpsSwarmSpawner:
    """The spawner the hub would make from `c`, for a user of JupyterHub's shape (a name and groups)."""
    user = SimpleNamespace(name=username, groups=[SimpleNamespace(name=g) for g in groups], url="/user/alice/")
    return CfpsSwarmSpawner(config=c, user=user)


def test_swarm_spawner_is_chosen_and_shares_the_docker_spawners_container_settings():
    swarm, docker = configured("swarm"), configured("docker")
    assert swarm.JupyterHub.spawner_class == "hubconfig.swarm.CfpsSwarmSpawner"
    shared = {key: value for key, value in docker.CfpsDockerSpawner.items() if key not in NETWORK_KEYS}
    assert dict(swarm.CfpsDockerSpawner) == shared
    assert {"image", "volumes", "mem_limit", "cpu_limit", "group_limits", "cmd", "extra_host_config"} <= set(shared)


def test_the_swarm_spawner_inherits_volumes_limits_and_confinement():
    c = configured("swarm", DOCKER_DATA_VOLUME="data-x", DOCKER_TEAM_VOLUME="team-x", PIDS_LIMIT="300")
    spawner = swarm_spawner(c, groups=("class-a",))
    assert spawner.volume_binds == {
        "jupyterhub-user-alice": {"bind": "/home/jovyan", "mode": "rw"},
        "data-x": {"bind": "/home/jovyan/data", "mode": "ro"},
        "team-x": {"bind": "/home/jovyan/team-shared", "mode": "rw"},
        "cfps-team-class-a": {"bind": "/home/jovyan/teams/class-a", "mode": "rw"},
    }
    assert (spawner.mem_limit, spawner.cpu_limit) == (1024**3, 1.0)
    spawner.apply_group_limits(["class-a"])
    assert (spawner.mem_limit, spawner.cpu_limit) == (3 * 1024**3, 2.0)
    assert spawner.extra_host_config["pids_limit"] == 300
    assert (spawner.network_name, spawner.ip, spawner.use_internal_ip, spawner.cluster) == (
        "host",
        "127.0.0.1",
        True,
        False,
    )
    assert [(m["Source"], m["Type"], m["ReadOnly"]) for m in spawner.mounts] == [
        ("jupyterhub-user-alice", "volume", False),
        ("data-x", "volume", True),
        ("team-x", "volume", False),
        ("cfps-team-class-a", "volume", False),
    ]
    assert all("VolumeOptions" not in m for m in spawner.mounts), "local: the node's own Docker volumes"


@pytest.mark.parametrize(
    ("api", "privileges", "pids", "missing"),
    [
        ("1.41", None, 512, ["no-new-privileges"]),
        ("1.44", {"NoNewPrivileges": True}, 512, []),
        ("1.40", None, None, ["no-new-privileges", "the pids limit"]),
    ],
    ids=["docker-20.10", "docker-25", "docker-19.03"],
)
def test_container_confinement_becomes_the_service_spec_as_far_as_the_engine_carries_it(api, privileges, pids, missing):
    host_config = dict(configured("swarm").CfpsDockerSpawner.extra_host_config)
    container, limits, not_carried = service_settings(host_config, api)
    assert container.get("cap_drop") == ["ALL"] and container.get("init") is True
    assert container.get("privileges") == privileges
    assert limits.get("Pids") == pids
    assert [phrase.split(" (")[0] for phrase in not_carried] == missing


def test_a_disk_quota_is_named_as_not_carried_into_a_service():
    assert any("USER_DISK_QUOTA" in p for p in service_settings({"storage_opt": {"size": "5G"}}, "1.50")[2])


@pytest.mark.parametrize(
    ("volumes", "home_options"),
    [
        ("shared", lambda root: {"type": "none", "o": "bind", "device": f"{root}/volumes/jupyterhub-user-alice"}),
        (
            f"nfs://{NFS_IP}/srv/cfps",
            lambda root: {
                "type": "nfs",
                "o": f"addr={NFS_IP},nfsvers=4",
                "device": ":/srv/cfps/volumes/jupyterhub-user-alice",
            },
        ),
    ],
    ids=["shared", "nfs"],
)
def test_shared_and_nfs_volumes_carry_the_local_drivers_options_for_every_node(tmp_path, volumes, home_options):
    c = configured("swarm", SWARM_VOLUMES=volumes, DATA_ROOT=str(tmp_path / "root"))
    mounts = {m["Target"]: m["VolumeOptions"]["DriverConfig"] for m in swarm_spawner(c).mounts}
    assert mounts["/home/jovyan"] == {"Name": "local", "Options": home_options(tmp_path / "root")}
    data = mounts["/home/jovyan/data"]["Options"]["device"]
    assert data.endswith("/data") and mounts["/home/jovyan/team-shared"]["Options"]["device"].endswith("/team-shared")


def test_nfs_options_can_be_set():
    c = configured("swarm", SWARM_VOLUMES=f"nfs://{NFS_IP}/srv/cfps/", SWARM_NFS_OPTIONS="nfsvers=4.2,hard")
    home = swarm_spawner(c).mounts[0]["VolumeOptions"]["DriverConfig"]["Options"]
    assert (
        home["o"] == f"addr={NFS_IP},nfsvers=4.2,hard" and home["device"] == ":/srv/cfps/volumes/jupyterhub-user-alice"
    )


def test_a_cluster_runs_servers_on_workers_and_the_hub_listens_for_them():
    c = configured("swarm", SWARM_MANAGER_IP=TEST_NET_IP, SWARM_VOLUMES="shared", HUB_PORT="8181")
    spawner = swarm_spawner(c)
    assert spawner.cluster is True and spawner.ip == "0.0.0.0"
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8181"
    assert c.JupyterHub.hub_connect_url == f"http://{TEST_NET_IP}:8181"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"SWARM_MANAGER_IP": TEST_NET_IP}, "SWARM_VOLUMES=local keeps each home on one node"),
        ({"SWARM_VOLUMES": "ceph"}, "SWARM_VOLUMES must be local, shared or nfs://HOST/PATH"),
        ({"SWARM_VOLUMES": "nfs:///srv/cfps"}, "SWARM_VOLUMES must be"),
    ],
    ids=["cluster-with-local-volumes", "unknown-kind", "nfs-without-host"],
)
def test_unusable_swarm_settings_stop_the_hub_with_one_line(values, message):
    with pytest.raises(HubConfigError, match=message):
        configured("swarm", **values)


def test_prod_refuses_a_one_node_swarm_beside_its_databases_and_takes_a_cluster():
    prod = {**PROD_SECRETS, "APP_PROFILE": "prod"}
    del prod["SPAWNER"]
    with pytest.raises(HubConfigError, match="APP_PROFILE=prod refuses it"):
        configured("swarm", **prod)
    c = configured("swarm", SWARM_MANAGER_IP=TEST_NET_IP, SWARM_VOLUMES=f"nfs://{NFS_IP}/srv/cfps", **prod)
    assert c.JupyterHub.spawner_class == "hubconfig.swarm.CfpsSwarmSpawner"
