"""hubconfig/docker.py against a plain traitlets Config: which spawner the hub picks and what DockerSpawner
is told (tests/docker runs the same configuration against the real engine)."""

from __future__ import annotations

import copy
import secrets

import pytest
from traitlets.config import Config

from hubconfig.config import HubConfigError, apply_config, startup_warnings
from hubconfig.docker import SINGLEUSER, START_SCRIPT, choose_spawner
from portal.config import Config as AppConfig
from portal.config import containers, table
from portal.config.env import Env

TEST_NET_IP = "192.0.2.10"  # RFC 5737 documentation address: only ever a config value here


def configured(**values) -> Config:
    c = Config()
    apply_config(c, AppConfig(Env({"SPAWNER": "docker", "DOCKER_NETWORK": "host", **values})))
    return c


def test_docker_spawner_gets_the_image_the_mounts_and_remove_from_env():
    c = configured(DOCKER_IMAGE="cfps-notebook:2026", DOCKER_DATA_VOLUME="data-x", DOCKER_TEAM_VOLUME="team-x")
    spawner = c.CfpsDockerSpawner
    assert c.JupyterHub.spawner_class == "hubconfig.docker.CfpsDockerSpawner"
    assert spawner.image == "cfps-notebook:2026" and spawner.pull_policy == "never"
    assert spawner.remove is True
    assert spawner.volumes == {
        "jupyterhub-user-{username}": "/home/jovyan",
        "data-x": {"bind": "/home/jovyan/data", "mode": "ro"},
        "team-x": {"bind": "/home/jovyan/team-shared", "mode": "rw"},
    }
    assert spawner.notebook_dir == "/home/jovyan"
    # the host's lab_settings path means nothing in a container; the image carries the same overrides.json
    assert spawner.args == []
    assert spawner.cmd == ["sh", "-c", START_SCRIPT, "cfps-start", *SINGLEUSER]


def test_volume_defaults_are_the_original_names():
    volumes = configured().CfpsDockerSpawner.volumes
    assert {"cfps-common-data", "cfps-team-shared"} <= set(volumes)


def test_containers_see_the_data_folder_contract_and_the_dataset():
    environment = configured().CfpsDockerSpawner.environment
    assert environment["CFPS_DATA_DIR"] == "/home/jovyan/data"
    assert environment["PYTHONPATH"] == "/home/jovyan/data/lib"
    assert environment["CFPS_DATASET_URL"].startswith("sqlite:////home/jovyan/data/")


@pytest.mark.parametrize(
    ("values", "mem", "cpu"),
    [({}, 2 * 1024**3, 1.0), ({"MEM_LIMIT": "512M", "CPU_LIMIT": "0.5"}, 512 * 1024**2, 0.5)],
    ids=["defaults", "from-env"],
)
def test_memory_and_cpu_limits_default_and_override(values, mem, cpu):
    spawner = configured(**values).CfpsDockerSpawner
    assert (spawner.mem_limit, spawner.cpu_limit) == (mem, cpu)


def test_group_limits_become_per_group_overrides():
    spawner = configured(GROUP_LIMITS="class-a:2G:1.0; research:8G:4 ;tutors::2").CfpsDockerSpawner
    assert spawner.group_limits == {
        "class-a": {"mem_limit": 2 * 1024**3, "cpu_limit": 1.0},
        "research": {"mem_limit": 8 * 1024**3, "cpu_limit": 4.0},
        "tutors": {"mem_limit": None, "cpu_limit": 2.0},
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("GROUP_LIMITS", "class-a:2G", "not group:memory:cpus"),
        ("GROUP_LIMITS", "class-a:lots:1", "not a size"),
        ("MEM_LIMIT", "2 gigs", "MEM_LIMIT"),
        ("CPU_LIMIT", "-1", "CPU_LIMIT"),
        ("DOCKER_DATA_VOLUME", "my data", "DOCKER_DATA_VOLUME"),
        ("PIDS_LIMIT", "lots", "PIDS_LIMIT"),
        ("PIDS_LIMIT", "8", "PIDS_LIMIT must be 32 or more"),
        ("USER_DISK_QUOTA", "5 gigs", "USER_DISK_QUOTA"),
    ],
)
def test_malformed_container_settings_stop_the_hub_with_one_line(key, value, message):
    with pytest.raises(HubConfigError, match=message) as failure:
        configured(**{key: value})
    assert "\n" not in str(failure.value)


def test_containers_get_no_capabilities_no_new_privileges_and_a_pids_limit():
    host_config = configured().CfpsDockerSpawner.extra_host_config
    assert host_config == {
        "init": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 512,
    }
    assert "cap_add" not in host_config and "privileged" not in host_config


@pytest.mark.parametrize(("network", "extra"), [("host", {}), ("cfps-users", {"DOCKER_INTERFACE_IP": TEST_NET_IP})])
def test_confinement_is_the_same_on_every_network(network, extra):
    host_config = configured(DOCKER_NETWORK=network, PIDS_LIMIT="256", **extra).CfpsDockerSpawner.extra_host_config
    assert (host_config["cap_drop"], host_config["security_opt"], host_config["pids_limit"]) == (
        ["ALL"],
        ["no-new-privileges"],
        256,
    )


def test_users_network_defaults_to_the_isolated_cfps_users():
    c = configured(DOCKER_NETWORK="", DOCKER_INTERFACE_IP=TEST_NET_IP)
    assert c.CfpsDockerSpawner.network_name == table.BY_NAME["DOCKER_NETWORK"].default == "cfps-users"
    # Published on the host's loopback only: other containers cannot reach a server through the host.
    assert "host_ip" not in c.CfpsDockerSpawner and c.CfpsDockerSpawner.use_internal_ip is not True


@pytest.mark.parametrize(("value", "quota"), [("", ""), ("5G", "5G"), ("512mb", "512M"), ("1.5g", "1.5G")])
def test_disk_quota_is_off_by_default_and_passed_as_docker_reads_it(value, quota):
    assert configured(USER_DISK_QUOTA=value).CfpsDockerSpawner.disk_quota == quota


def test_host_network_keeps_the_hub_and_each_server_on_loopback():
    c = configured(DOCKER_NETWORK="host", HUB_PORT="8181")
    assert c.CfpsDockerSpawner.network_name == "host"
    assert c.CfpsDockerSpawner.ip == "127.0.0.1"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8181"
    assert "hub_connect_url" not in c.JupyterHub


def test_prod_refuses_the_host_network_beside_its_databases_in_one_line():
    from tests.hubconfig.test_config import PROD_SECRETS

    prod = {**PROD_SECRETS, "APP_PROFILE": "prod", "SPAWNER": "docker"}
    with pytest.raises(HubConfigError, match="DOCKER_NETWORK=host .* APP_PROFILE=prod refuses it") as refused:
        configured(DOCKER_NETWORK="host", **prod)
    assert "\n" not in str(refused.value)
    c = configured(DOCKER_NETWORK="cfps-users", DOCKER_INTERFACE_IP=TEST_NET_IP, **prod)  # the users' bridge: fine
    assert c.CfpsDockerSpawner.network_name == "cfps-users"


def test_bridge_network_connects_containers_to_the_hub_at_the_interface_address():
    c = configured(DOCKER_NETWORK="bridge", DOCKER_INTERFACE_IP=TEST_NET_IP, HUB_PORT="8181")
    assert c.CfpsDockerSpawner.network_name == "bridge"
    assert c.CfpsDockerSpawner.ip == "0.0.0.0"  # inside the container; Docker publishes it on 127.0.0.1
    assert c.JupyterHub.hub_bind_url == "http://0.0.0.0:8181"
    assert c.JupyterHub.hub_connect_url == f"http://{TEST_NET_IP}:8181"


def test_a_dataset_server_on_the_hosts_loopback_is_reached_at_the_interface_address_from_a_bridge():
    url = "mysql://jupyterhub:pw@127.0.0.1:3306/cfps"
    bridge = configured(DOCKER_NETWORK="bridge", DOCKER_INTERFACE_IP=TEST_NET_IP, DATASET_DATABASE_URL=url)
    assert bridge.CfpsDockerSpawner.environment["CFPS_DATASET_URL"] == f"mysql://jupyterhub:pw@{TEST_NET_IP}:3306/cfps"
    host = configured(DOCKER_NETWORK="host", DATASET_DATABASE_URL=url)
    assert host.CfpsDockerSpawner.environment["CFPS_DATASET_URL"] == url


def test_applying_twice_gives_the_same_docker_config():
    env = AppConfig(Env({"SPAWNER": "docker", "DOCKER_NETWORK": "bridge", "DOCKER_INTERFACE_IP": TEST_NET_IP}))
    once, twice = Config(), Config()
    apply_config(once, env)
    apply_config(twice, env)
    snapshot = copy.deepcopy(twice)
    apply_config(twice, env)
    assert once == twice == snapshot


def test_spawner_in_env_wins():
    assert choose_spawner(AppConfig(Env({"SPAWNER": "local"})))[0] == "local"
    assert choose_spawner(AppConfig(Env({"SPAWNER": "Docker"})))[0] == "docker"


def test_prod_uses_docker_without_asking_the_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert choose_spawner(AppConfig(Env({"APP_PROFILE": "prod"}))) == ("docker", "APP_PROFILE=prod always uses Docker")


def test_dev_falls_back_to_local_and_says_why_without_a_docker_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    spawner, why = choose_spawner(AppConfig(Env({})))
    assert spawner == "local" and "Docker engine does not answer" in why
    assert any(
        line.startswith("Spawner: local (SPAWNER is not set and") for line in startup_warnings(AppConfig(Env({})))
    )


def test_dev_falls_back_to_local_when_the_image_is_missing():
    # Either the engine is missing here or the image is: both mean local.
    spawner, why = choose_spawner(AppConfig(Env({"DOCKER_IMAGE": f"cfps-missing-{secrets.token_hex(4)}:none"})))
    assert spawner == "local" and ("does not exist" in why or "does not answer" in why)


def test_dev_falls_back_to_local_when_the_users_network_is_missing():
    spawner, why = choose_spawner(AppConfig(Env({"DOCKER_NETWORK": f"cfps-missing-{secrets.token_hex(4)}"})))
    # Either the engine or the image is missing here, or the network is: all mean local, with the next step.
    assert spawner == "local", why
    assert "setup_volumes" in why or "does not exist" in why or "does not answer" in why


def test_dev_falls_back_to_local_when_the_shared_volumes_are_missing():
    """A fresh clone on a machine with Docker and the image, before setup_volumes: local, not a failed spawn."""
    spawner, why = choose_spawner(
        AppConfig(Env({"DOCKER_NETWORK": "host", "DOCKER_DATA_VOLUME": f"cfps-missing-{secrets.token_hex(4)}"}))
    )
    assert spawner == "local", why
    assert "setup_volumes" in why or "does not exist" in why or "does not answer" in why


def test_a_missing_users_network_stops_the_hub_with_the_step_that_makes_it():
    with pytest.raises(HubConfigError) as failure:
        configured(DOCKER_NETWORK=f"cfps-missing-{secrets.token_hex(4)}")
    message = str(failure.value)
    # Without an engine here the hub cannot ask for the network's address at all: also one line.
    assert "python manage.py setup_volumes creates it" in message or "cannot ask Docker" in message, message
    assert "\n" not in message


def test_hub_log_warns_when_containers_can_reach_each_other():
    lines = startup_warnings(AppConfig(Env({"SPAWNER": "docker", "DOCKER_NETWORK": "bridge"})))
    # With an engine and the image: the network's warning; without them: why servers cannot start at all.
    assert any("lets containers reach each other" in line or "cannot start" in line for line in lines), lines


def test_unknown_spawner_is_refused_in_one_line():
    with pytest.raises(HubConfigError, match="SPAWNER must be one of"):
        configured(SPAWNER="kubernetes")


@pytest.mark.parametrize(
    ("group", "folder", "volume"),
    [
        ("class-a", "class-a", "cfps-team-class-a"),
        ("team_2", "team_2", "cfps-team-team_2"),
        ("一班", "一班", None),
        ("Class A", "Class A", None),
        ("a/b", None, None),
        (".hidden", None, None),
    ],
)
def test_group_folders_keep_readable_names_and_volumes_get_safe_distinct_ones(group, folder, volume):
    assert containers.group_folder(group) == (folder or containers.group_slug(group))
    name = containers.group_volume(group)
    assert name == volume if volume else name.startswith("cfps-team-") and name != "cfps-team-"
    assert containers._SAFE_NAME.match(name)
    assert "/" not in containers.group_folder(group) and not containers.group_folder(group).startswith(".")


def test_two_groups_that_differ_only_in_case_get_different_volumes():
    assert containers.group_volume("Class-A") != containers.group_volume("class-a")


def test_debian_mirror_defaults_to_the_one_apt_uses(tmp_path):
    from portal.config import containers

    deb822, legacy = tmp_path / "deb822", tmp_path / "legacy"
    (deb822 / "sources.list.d").mkdir(parents=True)
    (deb822 / "sources.list.d" / "campus.sources").write_text(
        "Types: deb\nURIs: http://mirror.campus.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.campus.example/debian\nSuites: bookworm\n"
        "Components: main\n"
    )
    assert containers.apt_debian_mirror(deb822) == "http://mirror.campus.example/debian"
    legacy.mkdir()
    (legacy / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirrors.campus.example/debian bookworm main contrib\n"
    )
    assert containers.apt_debian_mirror(legacy) == "http://mirrors.campus.example/debian"
    assert containers.apt_debian_mirror(tmp_path / "missing") == ""


def test_containers_outlive_a_hub_restart():
    assert configured().JupyterHub.cleanup_servers is False


def test_every_server_shares_one_pool_of_engine_threads_wider_than_dockerspawners_one():
    # DockerSpawner's own executor is a single thread: ten students starting at once queued behind each other's
    # create and start calls (10 first starts took 1.4 s longer, side by side).
    from hubconfig.docker import DOCKER_THREADS, CfpsDockerSpawner

    first, second = CfpsDockerSpawner(), CfpsDockerSpawner()
    assert first.executor is second.executor
    assert first.executor._max_workers == DOCKER_THREADS > 1
