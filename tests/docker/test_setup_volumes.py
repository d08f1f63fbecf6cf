"""`manage.py setup_volumes` against the real Docker engine: the two shared volumes, bound onto folders
under DATA_ROOT, and the data folder filled from the repository."""

from __future__ import annotations

import pytest

from tests.docker.conftest import RUN
from tests.live import PortalProcess


@pytest.fixture
def portal(tmp_path, docker_client, notebook_image):
    """A portal's command line (no server) with its own DATA_ROOT and volume names."""
    names = {
        "DOCKER_DATA_VOLUME": f"cfps-test-{RUN}-{tmp_path.name[-12:]}-data".replace("_", "-"),
        "DOCKER_TEAM_VOLUME": f"cfps-test-{RUN}-{tmp_path.name[-12:]}-team".replace("_", "-"),
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
