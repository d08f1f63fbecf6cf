"""`manage.py backup` and `restore` as an operator uses them: a term's work on a running system (accounts
signed up with invite codes, a group, a hub login, files in a local-mode home and in Docker volumes) is
backed up while it runs, the machine's state is wiped, and a fresh checkout restores it; every student logs
in with the old password and finds files, groups and invite counts as they were."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from portal.config import containers
from portal.config.keys import new_rsa_private_key_pem
from tests.e2e import flows
from tests.live import REPO, PortalError, Stack
from tests.ops.conftest import IMAGE, RUN, docker, volume_owner, volume_read, volume_write

GROUP = f"class-{RUN}"
GROUP_CODE = f"OPS-{RUN}".upper()
STUDENTS = (f"ann-{RUN}", f"bob-{RUN}", f"cai-{RUN}")  # ann and bob use INVITE_CODE, cai the group's code
TEAM_VOLUME = f"cfps-ops-team-{RUN}"
OLD_ENV = f"# the operator's settings, term {RUN}\nINVITE_CODES={flows.INVITE_CODE}\n"


def state_env(root: Path, env_text: str) -> dict[str, str]:
    """A system's own .env and OIDC key file (as README's deploy steps make them) under root."""
    root.mkdir(parents=True, exist_ok=True)
    env_file, key_file = root / "cfps.env", root / "oidc.pem"
    env_file.write_text(env_text)
    env_file.chmod(0o640)
    key_file.write_text(new_rsa_private_key_pem())
    key_file.chmod(0o600)
    return {
        "CFPS_ENV_FILE": str(env_file),
        "OIDC_RSA_PRIVATE_KEY_FILE": str(key_file),
        "INVITE_CODES": flows.INVITE_CODE,
        "DOCKER_TEAM_VOLUME": TEAM_VOLUME,
        "DOCKER_DATA_VOLUME": f"cfps-ops-data-{RUN}",
        "ALLOWED_HOSTS": "127.0.0.1",  # XXX until tests/live.py follows the two-origin topology
    }


def shell(system, script: str) -> dict:
    return json.loads(system.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


PORTAL_FACTS = """
import contextlib
import json
from accounts.models import InviteCode, User
print(json.dumps({
    "users": {u.username: {"groups": sorted(g.name for g in u.groups.all()), "hash": u.password}
              for u in User.objects.filter(username__contains=RUN_)},
    "uses": {c.code: c.use_count for c in InviteCode.objects.all()},
}))
""".replace("RUN_", repr(RUN))


def sign_up(stack, username: str, code: str) -> None:
    with flows.new_client(stack) as client:
        form = client.get("/accounts/signup/")
        data = {"username": username, "password1": flows.PASSWORD, "password2": flows.PASSWORD, "invite_code": code}
        response = flows.post_form(stack, client, form, data)
        assert flows.logged_in_as(response.text) == username, response.text[:2000]


def prepared(root: Path, env_text: str = "# a fresh clone\n") -> Stack:
    """A fresh checkout after `./run.sh --prepare` (migrated database, bootstrap admin, nothing else), its
    processes not started; the archive's volumes are gone from the engine, as on a new machine."""
    stack = Stack(root, extra_env=state_env(root, env_text))
    stack.manage("migrate", "--noinput")
    stack.manage("bootstrap")
    return stack


@pytest.fixture
def new_machine(term):
    docker("volume", "rm", "-f", *term["volumes"], TEAM_VOLUME, f"cfps-ops-data-{RUN}")


@pytest.fixture(scope="module")
def term(tmp_path_factory, docker_engine):
    """A term's work on a running stack, backed up while it runs; then the machine's state is wiped."""
    root = tmp_path_factory.mktemp("old-server")
    env = state_env(root, OLD_ENV)
    with Stack(root, extra_env=env) as stack:
        var = Path(stack.env["CFPS_VAR_DIR"])
        stack.manage("create_invite", "--max-uses", "30", "--group", GROUP, "--create-group", "--code", GROUP_CODE)
        for username in STUDENTS[:2]:
            sign_up(stack, username, flows.INVITE_CODE)
        sign_up(stack, STUDENTS[2], GROUP_CODE)
        with flows.new_client(stack) as client:  # the hub learns about ann
            flows.hub_login(stack, client, STUDENTS[0])
        # ann works in local mode: a file in her home, and the link to the shared data the spawner makes
        home = var / "users" / STUDENTS[0]
        (home / "notebooks").mkdir(parents=True)
        (home / "notebooks" / "作业1.ipynb").write_text('{"cells": []}')
        (var / "shared" / "data").mkdir(parents=True)
        (home / "data").symlink_to(var / "shared" / "data")
        # bob and cai work in containers: bob's home volume (named as DockerSpawner names it: `bob-x` escaped), the
        # group's volume, the bind-mounted team folder
        bob_volume = containers.user_volume(STUDENTS[1])
        group_volume = containers.group_volume(GROUP)
        docker("volume", "create", bob_volume)
        docker("volume", "create", "--label", "org.cfps.managed-by=hub", "--label", f"org.cfps.group={GROUP}",
               group_volume)  # fmt: skip
        team_dir = var / "volumes" / "team-shared"
        team_dir.mkdir(parents=True)
        docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={team_dir}", TEAM_VOLUME)
        docker("run", "--rm", "--user", "0", "--network", "none", "-v", f"{TEAM_VOLUME}:/v", "--entrypoint", "chown",
               IMAGE, "1000:100", "/v")  # fmt: skip
        volume_write(bob_volume, "notebooks/分析.py", "print('bob')\n")
        volume_write(group_volume, "report.md", "# group report\n")
        volume_write(TEAM_VOLUME, "shared.txt", "for everyone\n")
        # The course's stored material and collected hand-ins (COURSE_ROOT, var/course by default).
        handin = var / "course" / "handins" / "1" / "2-3" / "作业1.ipynb"
        handin.parent.mkdir(parents=True)
        handin.write_text('{"cells": ["handed in"]}')
        before = shell(stack, PORTAL_FACTS)
        old_key = Path(env["OIDC_RSA_PRIVATE_KEY_FILE"]).read_text()
        old_secrets = {p.name: p.read_text() for p in (var / "secrets").iterdir()}
        result = stack.manage("backup", "--output", str(root / "backups"))
        archive = next((root / "backups").glob("cfps-backup-*.tar"))
    # The machine is gone: its var/, .env, key, database and volumes.
    docker("volume", "rm", bob_volume, group_volume, TEAM_VOLUME)
    saved = root.parent / f"{root.name}-archive.tar"
    shutil.copy2(archive, saved)
    shutil.rmtree(root)
    return {
        "archive": saved,
        "mode": stat.S_IMODE(archive.stat().st_mode) if archive.exists() else None,
        "output": result.stdout,
        "before": before,
        "old_key": old_key,
        "old_secrets": old_secrets,
        "volumes": (bob_volume, group_volume),
    }


def test_backup_reports_each_part_and_the_size_and_writes_an_owner_only_archive(term):
    output = term["output"]
    for part in ("portal database", "hub database", ".env and secrets", "volume jupyterhub-user-", "Backup written"):
        assert part in output, output
    assert output.strip().splitlines()[-1].endswith(("KB)", "MB)", "GB)")), output
    assert stat.S_IMODE(term["archive"].stat().st_mode) == 0o600
    with tarfile.open(term["archive"]) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        members = {m.name for m in tar.getmembers()}
    assert {p["member"] for p in manifest["parts"]} | {"manifest.json"} == members
    assert all(len(p["sha256"]) == 64 and p["size"] > 0 for p in manifest["parts"])
    kinds = {p["kind"] for p in manifest["parts"]}
    assert kinds == {"portal-db", "hub-db", "file", "dir", "volume"}, kinds


def test_restore_on_a_fresh_clone_brings_back_accounts_passwords_groups_invites_files_and_volumes(
    term, new_machine, tmp_path
):
    fresh = prepared(tmp_path)
    var = Path(fresh.env["CFPS_VAR_DIR"])
    fresh.manage("setup_volumes")  # as README says; its empty team volume is no reason to refuse
    result = fresh.manage("restore", str(term["archive"]))
    assert "checksums:" in result.stdout and "Restored" in result.stdout, result.stdout

    # Files that are secrets come back exactly, owner-only.
    assert Path(fresh.env["CFPS_ENV_FILE"]).read_text() == OLD_ENV
    assert Path(fresh.env["OIDC_RSA_PRIVATE_KEY_FILE"]).read_text() == term["old_key"]
    for name, text in term["old_secrets"].items():
        path = var / "secrets" / name
        assert path.read_text() == text and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, name

    # Accounts, password hashes, groups and invite counts, exactly as they were.
    after = shell(fresh, PORTAL_FACTS)
    assert after["users"] == term["before"]["users"]
    assert (
        after["uses"][GROUP_CODE] == 1 and after["uses"][flows.INVITE_CODE] == term["before"]["uses"][flows.INVITE_CODE]
    )

    # ann's local home, with its link moved to the new var/; bob's and the group's volumes, owned by uid 1000.
    home = var / "users" / STUDENTS[0]
    assert (home / "notebooks" / "作业1.ipynb").read_text() == '{"cells": []}'
    assert (home / "data").readlink() == var / "shared" / "data"
    bob_volume, group_volume = term["volumes"]
    assert volume_read(bob_volume, "notebooks/分析.py") == "print('bob')\n"
    assert volume_owner(bob_volume, "notebooks/分析.py") == "1000:100"
    assert volume_read(group_volume, "report.md") == "# group report\n"
    labels = json.loads(docker("volume", "inspect", group_volume).stdout)[0]["Labels"]
    assert labels["org.cfps.group"] == GROUP
    # The bind-mounted team volume points into the new var/, and the file is a plain file there.
    options = json.loads(docker("volume", "inspect", TEAM_VOLUME).stdout)[0]["Options"]
    assert options["device"] == str(var / "volumes" / "team-shared")
    assert (var / "volumes" / "team-shared" / "shared.txt").read_text() == "for everyone\n"
    # The course's hand-ins are back where COURSE_ROOT says.
    assert (var / "course" / "handins" / "1" / "2-3" / "作业1.ipynb").read_text() == '{"cells": ["handed in"]}'

    with contextlib.closing(sqlite3.connect(var / "hub" / "jupyterhub.sqlite")) as hub_db:
        assert STUDENTS[0] in {name for (name,) in hub_db.execute("SELECT name FROM users")}

    # The restored system runs: every student logs in with the old password, the hub still knows ann.
    # This test's new machine has other ports than the old one: re-register the hub's URLs, as run.sh does.
    fresh.manage("bootstrap", "--update-urls")
    with fresh as stack:
        for username in STUDENTS:
            with flows.new_client(stack) as client:
                page = flows.portal_login(stack, client, username)
                assert flows.logged_in_as(page.text) == username, f"{username} cannot log in after the restore"
        with flows.new_client(stack) as client:
            flows.hub_login(stack, client, STUDENTS[0])


def test_a_damaged_archive_is_refused_before_anything_changes(term, new_machine, tmp_path):
    damaged = tmp_path / "damaged.tar"
    shutil.copy(term["archive"], damaged)
    with tarfile.open(damaged) as tar:
        offset = tar.getmember("portal-db.sqlite3").offset_data + 100
    with open(damaged, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    fresh = prepared(tmp_path / "fresh")
    env_before = Path(fresh.env["CFPS_ENV_FILE"]).read_text()
    with pytest.raises(PortalError) as refused:
        fresh.manage("restore", str(damaged), "--force")
    assert "portal-db.sqlite3 does not match its checksum" in str(refused.value)
    assert Path(fresh.env["CFPS_ENV_FILE"]).read_text() == env_before
    assert shell(fresh, PORTAL_FACTS)["users"] == {}


def test_a_system_with_work_in_it_is_refused_unless_forced(term, new_machine, tmp_path):
    fresh = prepared(tmp_path)
    fresh.manage("restore", str(term["archive"]))
    # The team volume, re-created by the restore, is bound into this machine's var/, not the old one.
    options = json.loads(docker("volume", "inspect", TEAM_VOLUME).stdout)[0]["Options"]
    assert options["device"] == str(Path(fresh.env["CFPS_VAR_DIR"]) / "volumes" / "team-shared")
    fresh.manage("shell", "-c", f"from accounts.models import User; User.objects.create_user('late-{RUN}')")
    with pytest.raises(PortalError) as refused:
        fresh.manage("restore", str(term["archive"]))
    message = str(refused.value)
    assert "refusing to overwrite" in message and "--force" in message
    assert "account(s) besides" in message and "Docker volume" in message, message
    assert f"late-{RUN}" in shell(fresh, PORTAL_FACTS)["users"]
    result = fresh.manage("restore", str(term["archive"]), "--force")
    assert "Restored" in result.stdout
    assert set(shell(fresh, PORTAL_FACTS)["users"]) == set(STUDENTS)


def test_an_archive_written_by_a_stranger_is_refused(tmp_path):
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.add(__file__, arcname="notes.txt")
    fresh = prepared(tmp_path / "fresh")
    with pytest.raises(PortalError) as refused:
        fresh.manage("restore", str(bogus))
    assert "is not a CFPS backup archive" in str(refused.value)


def test_backup_without_homes_leaves_out_homes_and_volumes(tmp_path):
    portal = prepared(tmp_path)
    (Path(portal.env["CFPS_VAR_DIR"]) / "users" / "someone").mkdir(parents=True)
    (Path(portal.env["CFPS_VAR_DIR"]) / "users" / "someone" / "f.txt").write_text("x")
    result = portal.manage("backup", "--without-homes", "--output", str(tmp_path / "out"))
    assert "left out (--without-homes)" in result.stdout
    archive = next((tmp_path / "out").glob("*.tar"))
    with tarfile.open(archive) as tar:
        kinds = {p["kind"] for p in json.load(tar.extractfile("manifest.json"))["parts"]}
    assert kinds == {"portal-db", "file"}


def test_keep_deletes_all_but_the_newest_archives(tmp_path):
    portal = prepared(tmp_path)
    out = tmp_path / "out"
    for _ in range(3):
        portal.manage("backup", "--without-homes", "--output", str(out), "--keep", "2")
        time.sleep(1.1)  # archive names have one-second resolution
    assert len(list(out.glob("cfps-backup-*.tar"))) == 2
    dry = portal.manage("backup", "--without-homes", "--output", str(out), "--keep", "1", "--dry-run").stdout
    assert "would save portal database (sqlite)" in dry and dry.count("would delete the older archive") == 1, dry
    assert len(list(out.glob("cfps-backup-*.tar"))) == 2  # --dry-run wrote and deleted nothing
    assert not list(out.glob(".*")), "no scratch or partial file is left behind"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_restore_dry_run_changes_nothing(term, new_machine, tmp_path):
    fresh = prepared(tmp_path)
    result = fresh.manage("restore", str(term["archive"]), "--dry-run")
    assert "would restore portal-db.sqlite3" in result.stdout
    assert shell(fresh, PORTAL_FACTS)["users"] == {}


def test_restore_refuses_while_the_portal_runs(term, new_machine, tmp_path):
    fresh = prepared(tmp_path)
    with fresh.portal:
        with pytest.raises(PortalError) as refused:
            fresh.manage("restore", str(term["archive"]))
    assert f"the portal answers on port {fresh.portal.port}" in str(refused.value)
    assert shell(fresh, PORTAL_FACTS)["users"] == {}


def test_a_backup_without_the_docker_engine_keeps_the_databases_but_fails_loudly(tmp_path):
    portal = prepared(tmp_path)
    portal.env.update(SPAWNER="docker", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    result = subprocess.run([sys.executable, "manage.py", "backup", "--output", str(tmp_path / "out"), "--keep", "1"],
                            cwd=REPO, env=portal.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert "was written, but the archive has no Docker volumes" in result.stderr, result.stderr
    archive = next((tmp_path / "out").glob("cfps-backup-*.tar"))
    with tarfile.open(archive) as tar:
        assert "portal-db.sqlite3" in tar.getnames()
