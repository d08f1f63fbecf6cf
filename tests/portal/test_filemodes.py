"""Owner-only files under var/ (portal/config/filemodes.py): what manage.py creates, and what bootstrap tightens."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from portal.config import filemodes
from tests.live import prepare_secrets

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def make_world_readable_var(tmp_path: Path) -> Path:
    var = tmp_path / "var"
    for folder in ("log", "hub", "users/alice/notebooks", "static", "image-build/rootfs", "volumes/data"):
        (var / folder).mkdir(parents=True)
    for name in ("portal.sqlite3", "log/portal.log", "hub/jupyterhub.sqlite", "users/alice/notebooks/a.ipynb",
                 "static/site.css", "image-build/rootfs/etc-passwd", "volumes/data/readme.txt"):  # fmt: skip
        (var / name).write_text("x")
    for path in var.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    var.chmod(0o755)
    return var


def test_tighten_makes_var_owner_only_except_the_shared_folders(tmp_path):
    var = make_world_readable_var(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (var / "users" / "alice" / "link").symlink_to(outside)
    shared = [var / "static", var / "image-build", var / "volumes"]

    changed = filemodes.tighten(var, exclude=shared)

    assert mode(var / "portal.sqlite3") == 0o600
    assert mode(var / "log" / "portal.log") == 0o600
    assert mode(var / "hub" / "jupyterhub.sqlite") == 0o600
    assert mode(var / "users" / "alice") == 0o700
    assert mode(var / "users" / "alice" / "notebooks" / "a.ipynb") == 0o600
    assert mode(var / "static" / "site.css") == 0o644, "static files are public and served by the portal"
    assert mode(var / "image-build" / "rootfs" / "etc-passwd") == 0o644, "the image's files are for its users"
    assert mode(var / "volumes" / "data" / "readme.txt") == 0o644, "the notebook user reads the shared volumes"
    assert mode(outside) == 0o644, "a symlink is never followed"
    assert mode(var) == 0o755, "var/ itself: the service user passes through it on a server"
    assert changed and filemodes.tighten(var, exclude=shared) == [], "a second run changes nothing"


def test_tighten_dry_run_changes_nothing(tmp_path):
    var = make_world_readable_var(tmp_path)
    assert var / "portal.sqlite3" in filemodes.tighten(var, dry_run=True)
    assert mode(var / "portal.sqlite3") == 0o644


def run_manage(tmp_path, *args):
    env = {
        **os.environ,
        "CFPS_ENV_FILE": "/dev/null",
        "CFPS_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
    }
    prepare_secrets(env)  # as ./run.sh runs the step before any manage.py
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_secrets_step_and_manage_py_create_files_owner_only_and_bootstrap_tightens_old_files(tmp_path):
    var = tmp_path / "var"
    (var / "log").mkdir(parents=True)
    old_log = var / "log" / "portal.log"
    old_log.write_text("from before the fix")
    old_log.chmod(0o644)

    result = run_manage(tmp_path, "migrate", "--noinput", "-v0")
    assert result.returncode == 0, result.stderr
    assert mode(var / "portal.sqlite3") == 0o600
    result = run_manage(tmp_path, "bootstrap")
    assert result.returncode == 0, result.stderr
    assert "owner-only" in result.stdout
    assert mode(old_log) == 0o600 and mode(var / "log") == 0o700
    assert all(mode(p) == 0o600 for p in (var / "secrets").iterdir())


def test_commands_that_share_their_files_keep_the_callers_umask():
    before = os.umask(0o022)
    try:
        filemodes.for_command(["manage.py", "collectstatic"])
        assert os.umask(0o022) == 0o022
        filemodes.for_command(["manage.py", "migrate"])
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(before)
