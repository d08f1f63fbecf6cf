"""`manage.py gen_systemd`: the units pass `systemd-analyze verify` without a single remark, run as the
service user with the same .env, restart on failure, log to the journal, and stay hardened."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import manage, require_tool
from tests.live import REPO

UNITS = (
    "cfps-portal.service",
    "cfps-hub.service",
    "cfps-worker.service",
    "cfps-firewall.service",
    "cfps-backup.service",
    "cfps-backup.timer",
)


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current.setdefault(key, []).append(value)
    return sections


@pytest.fixture
def generated(tmp_path):
    """The units for this checkout, as an operator generates them, with a real .env in tmp_path."""
    env_file = tmp_path / "cfps.env"
    env_file.write_text("SERVICE_USER=cfps-svc\nPORT=8000\n")
    env_file.chmod(0o640)
    out = tmp_path / "units"
    result = manage(
        "gen_systemd",
        "--output",
        str(out),
        "--firewall-rules",
        str(tmp_path / "firewall.rules"),
        env={"CFPS_ENV_FILE": str(env_file), "CFPS_VAR_DIR": str(tmp_path / "var")},
    )
    assert all(f"{name}: created" in result.stdout for name in UNITS), result.stdout
    return out, env_file, tmp_path / "var"


def test_units_pass_systemd_analyze_verify_without_a_remark(generated):
    systemd_analyze = require_tool("systemd-analyze", "systemd")
    out, _, _ = generated
    result = subprocess.run(
        [systemd_analyze, "verify", "--man=no", *(str(out / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # An unknown key or a missing binary is only a remark on stderr with exit 0; none is allowed.
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_portal_and_hub_run_as_the_service_user_with_the_env_file_and_restart_on_failure(generated):
    out, env_file, var = generated
    venv_bin = Path(sys.executable).parent
    portal, hub = parse_unit(out / "cfps-portal.service"), parse_unit(out / "cfps-hub.service")
    for unit in (portal, hub):
        service = unit["Service"]
        assert service["User"] == ["cfps-svc"] and service["Group"] == ["cfps-svc"]
        assert service["EnvironmentFile"] == [str(env_file)]
        assert f"CFPS_ENV_FILE={env_file}" in service["Environment"][0].split()
        assert service["Restart"] == ["on-failure"]
        assert service["StandardOutput"] == ["journal"] and service["StandardError"] == ["journal"]
        assert service["ReadWritePaths"] == [str(var)] and service["ProtectSystem"] == ["strict"]
        assert service["NoNewPrivileges"] == ["yes"]
        assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert portal["Service"]["ExecStart"] == [f"{venv_bin}/gunicorn -c {REPO}/deploy/gunicorn.conf.py portal.wsgi"]
    assert hub["Service"]["ExecStart"] == [
        f"{venv_bin}/python {REPO}/hubconfig/hub.py -f {REPO}/hubconfig/jupyterhub_config.py"
    ]
    assert hub["Service"]["WorkingDirectory"] == [f"{var}/hub"]
    # The Docker socket: without the group the hub cannot start a single container.
    assert hub["Service"]["SupplementaryGroups"] == ["docker"]
    assert "AF_UNIX" in hub["Service"]["RestrictAddressFamilies"][0].split()
    assert "MemoryDenyWriteExecute" not in hub["Service"]  # the Node.js proxy compiles JavaScript
    assert "cfps-firewall.service" in hub["Unit"]["Wants"][0].split()


@pytest.mark.parametrize(
    "name", ["cfps-portal.service", "cfps-hub.service", "cfps-worker.service", "cfps-backup.service"]
)
def test_services_stay_hardened(generated, name):
    """systemd's own score (0 = locked down, 10 = unprotected); 1.7 and 1.9 when written."""
    systemd_analyze = require_tool("systemd-analyze", "systemd")
    out, _, _ = generated
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(out / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5, result.stdout


def test_course_worker_runs_as_the_service_user_with_docker_and_stops_after_its_current_student(generated):
    out, env_file, var = generated
    service = parse_unit(out / "cfps-worker.service")["Service"]
    assert service["User"] == ["cfps-svc"] and service["SupplementaryGroups"] == ["docker"]  # helper containers
    assert service["ExecStart"] == [f"{Path(sys.executable).parent}/python {REPO}/manage.py course_worker"]
    assert service["EnvironmentFile"] == [str(env_file)] and service["ReadWritePaths"] == [str(var)]
    assert service["Restart"] == ["on-failure"] and service["KillMode"] == ["mixed"]
    assert service["CapabilityBoundingSet"] == [""]  # never root, no capability: homes are reached through Docker


def test_nightly_backup_runs_manage_backup_as_the_service_user_with_docker_and_catches_up_after_downtime(generated):
    out, env_file, var = generated
    service = parse_unit(out / "cfps-backup.service")["Service"]
    timer = parse_unit(out / "cfps-backup.timer")
    assert service["Type"] == ["oneshot"] and service["User"] == ["cfps-svc"]
    assert service["SupplementaryGroups"] == ["docker"]  # the volumes are read through a container
    assert service["ExecStart"] == [f"{Path(sys.executable).parent}/python {REPO}/manage.py backup --keep 7"]
    assert service["EnvironmentFile"] == [str(env_file)] and service["ReadWritePaths"] == [str(var)]
    assert service["UMask"] == ["0077"]  # nothing it writes is readable by others
    assert timer["Timer"]["OnCalendar"] == ["*-*-* 03:00:00"] and timer["Timer"]["Persistent"] == ["true"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_firewall_unit_replaces_its_jump_instead_of_adding_a_second_one(generated, tmp_path):
    out, _, _ = generated
    service = parse_unit(out / "cfps-firewall.service")["Service"]
    assert service["Type"] == ["oneshot"] and service["RemainAfterExit"] == ["yes"]
    pre, start = service["ExecStartPre"][0], service["ExecStart"][0]
    assert pre.startswith("-/") and pre.endswith("-D INPUT -j CFPS-INPUT")
    assert start.endswith(f"--noflush {tmp_path / 'firewall.rules'}")


@pytest.mark.parametrize(
    ("line", "why"),
    [("PORT=8000 # the public port", "comment"), ("export PORT=8000", "export")],
)
def test_env_lines_systemd_would_read_differently_are_refused_in_one_line(tmp_path, line, why):
    env_file = tmp_path / ".env"
    env_file.write_text(f"APP_PROFILE=dev\n{line}\n")
    result = manage("gen_systemd", env={"CFPS_ENV_FILE": str(env_file)}, check=False)
    assert result.returncode != 0 and "line 2" in result.stderr and why in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_root_as_service_user_is_refused():
    result = manage("gen_systemd", env={"SERVICE_USER": "root"}, check=False)
    assert result.returncode != 0 and "SERVICE_USER" in result.stderr and "Traceback" not in result.stderr


def test_writing_twice_changes_nothing(generated, tmp_path):
    out, env_file, var = generated
    stamps = {name: (out / name).stat().st_mtime_ns for name in UNITS}
    again = manage(
        "gen_systemd",
        "--output",
        str(out),
        "--firewall-rules",
        str(tmp_path / "firewall.rules"),
        env={"CFPS_ENV_FILE": str(env_file), "CFPS_VAR_DIR": str(var)},
    )
    assert again.stdout.count("unchanged") == len(UNITS)
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in UNITS}
