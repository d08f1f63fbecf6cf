"""`manage.py setup_volumes` against the real Docker engine: the two shared volumes, bound onto folders
under DATA_ROOT, the data folder filled from the repository, the users' network with inter-container traffic
off, and whether the engine can enforce USER_DISK_QUOTA.

The network is checked from its configuration (`docker network inspect`) and the iptables rules Docker
derives from it; no packet is ever sent to a bridge address."""

from __future__ import annotations

import subprocess

import pytest

from portal.config import containers
from tests.docker.conftest import RUN
from tests.live import PortalProcess
from userspace import isolation


@pytest.fixture
def portal(tmp_path, docker_client, notebook_image):
    """A portal's command line (no server) with its own DATA_ROOT and volume names."""
    names = {
        "DOCKER_DATA_VOLUME": f"cfps-test-{RUN}-{tmp_path.name[-12:]}-data".replace("_", "-"),
        "DOCKER_TEAM_VOLUME": f"cfps-test-{RUN}-{tmp_path.name[-12:]}-team".replace("_", "-"),
        "DOCKER_NETWORK": f"cfps-test-{RUN}-{tmp_path.name[-12:]}-users".replace("_", "-"),
    }
    portal = PortalProcess(tmp_path, extra_env=names)
    portal.data_root = tmp_path / "var" / "volumes"
    portal.names = names
    return portal


def test_creates_a_read_only_data_volume_and_a_team_volume_bound_under_data_root(portal, docker_client):
    output = portal.manage("setup_volumes").stdout
    data = docker_client.volumes.get(portal.names["DOCKER_DATA_VOLUME"]).attrs
    team = docker_client.volumes.get(portal.names["DOCKER_TEAM_VOLUME"]).attrs
    assert data["Options"] == {"type": "none", "o": "bind", "device": str(portal.data_root / "data")}, output
    assert team["Options"]["device"] == str(portal.data_root / "team-shared")
    for name in ("notebooks", "lib", "startup"):
        assert (portal.data_root / "data" / name).is_dir(), f"data/{name} missing after:\n{output}"
    # No DATASET_DATABASE_URL: notebooks read the synthetic sample from the data folder.
    assert (portal.data_root / "data" / "sample" / "cfps_sample.sqlite3").is_file(), output
    stat = (portal.data_root / "team-shared").stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (1000, 100, 0o2775)


def test_running_twice_changes_nothing(portal, docker_client):
    portal.manage("setup_volumes")
    before = {v.name: v.attrs["CreatedAt"] for v in docker_client.volumes.list() if RUN in v.name}
    second = portal.manage("setup_volumes").stdout
    assert "exists, unchanged" in second and "belongs to the notebook user, unchanged" in second, second
    after = {v.name: v.attrs["CreatedAt"] for v in docker_client.volumes.list() if RUN in v.name}
    assert before == after


def test_dry_run_creates_nothing(portal, docker_client):
    output = portal.manage("setup_volumes", "--dry-run").stdout
    assert f"would create volume {portal.names['DOCKER_DATA_VOLUME']}" in output, output
    assert not [v for v in docker_client.volumes.list() if v.name in portal.names.values()]
    assert not portal.data_root.exists()
    assert f"would create network {portal.names['DOCKER_NETWORK']}" in output, output
    assert not docker_client.networks.list(names=[portal.names["DOCKER_NETWORK"]])


def test_a_volume_that_points_elsewhere_is_reported_and_left_alone(portal, docker_client, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = portal.names["DOCKER_DATA_VOLUME"]
    docker_client.volumes.create(
        name=name, driver="local", driver_opts={"type": "none", "o": "bind", "device": str(elsewhere)}
    )
    with pytest.raises(Exception) as failure:
        portal.manage("setup_volumes")
    message = str(failure.value)
    assert f"volume {name} already exists and points to {elsewhere}" in message, message
    assert docker_client.volumes.get(name).attrs["Options"]["device"] == str(elsewhere)


def test_creates_the_users_network_with_inter_container_traffic_off(portal, docker_client):
    name = portal.names["DOCKER_NETWORK"]
    output = portal.manage("setup_volumes").stdout
    assert f"created network {name} (bridge, inter-container traffic off, " in output, output
    network = docker_client.networks.get(name).attrs
    assert network["Driver"] == "bridge" and network["Internal"] is False  # containers still reach the host
    assert network["Options"] == {containers.ICC_OPTION: "false"}
    # Docker turns that option into a DROP of the bridge's traffic to itself, container to container.
    bridge = "br-" + network["Id"][:12]
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert f"-i {bridge} -o {bridge} -j DROP" in rules, rules
    assert f"-i {bridge} -o {bridge} -j ACCEPT" not in rules, rules
    # The firewall's default interfaces (DOCKER_BRIDGE_INTERFACES) cover it.
    assert bridge.startswith("br-")


def test_running_twice_leaves_the_network_unchanged(portal, docker_client):
    portal.manage("setup_volumes")
    name = portal.names["DOCKER_NETWORK"]
    first = docker_client.networks.get(name).id
    second = portal.manage("setup_volumes").stdout
    subnet = docker_client.networks.get(name).attrs["IPAM"]["Config"][0]["Subnet"]
    assert f"network {name} (bridge, inter-container traffic off, {subnet}): exists, unchanged" in second, second
    assert docker_client.networks.get(name).id == first


def test_a_network_that_lets_containers_talk_is_reported_and_left_alone(portal, docker_client):
    name = portal.names["DOCKER_NETWORK"]
    docker_client.networks.create(name, driver="bridge")  # Docker's default: inter-container traffic on
    result = portal.manage("setup_volumes")
    assert f"warning: Docker network {name} lets containers reach each other" in result.stderr, result.stderr
    assert (docker_client.networks.get(name).attrs["Options"] or {}).get(containers.ICC_OPTION) != "false"


def test_default_bridge_is_reported_as_not_isolating(docker_client):
    # Docker's default bridge lets containers talk unless the daemon itself runs with --icc=false.
    talks = docker_client.networks.get("bridge").attrs["Options"].get(containers.ICC_OPTION) != "false"
    assert ("lets containers reach each other" in isolation.network_problem(docker_client, "bridge")) is talks
    assert "for tests only" in isolation.network_problem(docker_client, "host")


def test_disk_quota_support_is_reported_in_one_line_and_leaves_no_probe_behind(portal, docker_client):
    portal.env["USER_DISK_QUOTA"] = "1G"
    result = portal.manage("setup_volumes")
    supported = isolation.volume_quota_problem(docker_client, "1G") == ""
    warnings = [line for line in result.stderr.splitlines() if "USER_DISK_QUOTA" in line]
    if supported:
        assert "USER_DISK_QUOTA=1G: enforced on new home volumes" in result.stdout, result.stdout
    else:
        # This machine's engine (overlay2 on ext4) is of this kind: one line per part, with Docker's reason.
        assert warnings[0].startswith("warning: USER_DISK_QUOTA=1G is not enforced on the home volumes:"), warnings
        assert "xfs" in warnings[0]
    assert not [v for v in docker_client.volumes.list() if v.name.startswith(isolation.PROBE_PREFIX)]
    probes = docker_client.api.containers(all=True, filters={"name": isolation.PROBE_PREFIX})  # no inspect of others'
    assert not [c for c in probes if any(name.lstrip("/").startswith(isolation.PROBE_PREFIX) for name in c["Names"])]


def test_malformed_disk_quota_is_refused_in_one_line(portal):
    portal.env["USER_DISK_QUOTA"] = "lots"
    with pytest.raises(Exception) as failure:
        portal.manage("setup_volumes")
    assert "USER_DISK_QUOTA: 'lots' is not a size such as 512M or 2G" in str(failure.value)
