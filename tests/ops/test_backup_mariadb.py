"""`backup` and `restore` with the portal on MariaDB (`mariadb-dump --single-transaction`, loaded back with
the `mariadb` client): password hashes, groups, invite counts and the hub's OAuth client come back exactly.
Uses a scratch database of its own on the real server (root over TCP, as ./test.sh and CI have it)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.live import REPO, PortalProcess, free_port, prepare_secrets
from tests.ops.conftest import RUN

ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root"}
DATABASE = f"cfps_ops_{RUN}"

FACTS = """
import json
from django.contrib.auth.models import Group
from oauth2_provider.models import Application
from accounts.models import InviteCode, User
print(json.dumps({
    "users": {u.username: [u.password, sorted(g.name for g in u.groups.all()), u.is_staff] for u in User.objects.all()},
    "groups": sorted(Group.objects.values_list("name", flat=True)),
    "uses": {c.code: c.use_count for c in InviteCode.objects.all()},
    "apps": sorted([a.client_id, a.client_secret, a.redirect_uris] for a in Application.objects.all()),
}))
"""

POPULATE = f"""
from django.contrib.auth.models import Group
from accounts.models import InviteCode, User
code = InviteCode.objects.create(code="MDB-{RUN}".upper(), max_uses=9, use_count=3)
group = Group.objects.create(name="研究组-{RUN}")
for name in ("dai-{RUN}", "eve-{RUN}"):
    User.objects.create_user(username=name, password="Cfps-analysis-2026").groups.add(group)
"""


CLIENT = ["--protocol=tcp", "-h", ADMIN["host"], "-P", str(ADMIN["port"]), "-u", ADMIN["user"]]


@pytest.fixture(scope="module")
def migrated_schema(tmp_path_factory) -> bytes:
    """The portal's database as `migrate` leaves it on MariaDB, dumped once for the module: loading it takes a
    second, a `migrate` on MariaDB about 25 (four of them made the slowest file of the suite)."""
    import MySQLdb

    try:
        conn = MySQLdb.connect(**ADMIN, connect_timeout=3, autocommit=True)
    except MySQLdb.Error as exc:
        pytest.skip(f"MariaDB on 127.0.0.1:3306 cannot be used as root ({exc}); ./test.sh starts it")
    template = f"{DATABASE}_migrated"
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {template}")
    conn.cursor().execute(f"CREATE DATABASE {template} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        portal = PortalProcess(tmp_path_factory.mktemp("migrated"),
                               extra_env={"DATABASE_URL": f"mysql://root@127.0.0.1:3306/{template}"})  # fmt: skip
        portal.manage("migrate", "--noinput")
        return subprocess.run(["mariadb-dump", *CLIENT, "--single-transaction", "--skip-comments", template],
                              capture_output=True, check=True).stdout  # fmt: skip
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {template}")
        conn.close()


@pytest.fixture
def scratch_database(migrated_schema):
    """`recreate()`: the scratch database empty again; `migrated(portal)`: it as `portal.manage("migrate")` leaves
    it (from the dump), with the portal's secrets made as its first `manage` makes them."""
    import MySQLdb

    try:
        conn = MySQLdb.connect(**ADMIN, connect_timeout=3, autocommit=True)
    except MySQLdb.Error as exc:
        message = f"MariaDB on 127.0.0.1:3306 cannot be used as root ({exc}); ./test.sh starts it"
        pytest.skip(message)

    def recreate():
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.cursor().execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def migrated(portal: PortalProcess):
        prepare_secrets(portal.env)
        recreate()
        subprocess.run(["mariadb", *CLIENT, DATABASE], input=migrated_schema, capture_output=True, check=True)

    recreate()
    recreate.migrated = migrated
    yield recreate
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    conn.close()


def facts(portal: PortalProcess) -> dict:
    return json.loads(portal.manage("shell", "-c", FACTS).stdout.strip().splitlines()[-1])


def test_mariadb_portal_database_comes_back_with_hashes_groups_invite_counts_and_oauth_clients(
    scratch_database, tmp_path
):
    env = {"DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DATABASE}", "INVITE_CODES": f"BOOT-{RUN}".upper()}
    old = PortalProcess(tmp_path / "old", extra_env=env)
    scratch_database.migrated(old)
    old.manage("bootstrap")
    old.manage("shell", "-c", POPULATE)
    before = facts(old)
    result = old.manage("backup", "--without-homes", "--output", str(tmp_path / "backups"))
    assert "portal-db.sql" in result.stdout
    archive = next((tmp_path / "backups").glob("cfps-backup-*.tar"))

    # The server is new: an empty database, made ready by `./run.sh --prepare` (its `migrate`).
    fresh = PortalProcess(tmp_path / "new", extra_env=env)
    scratch_database.migrated(fresh)
    fresh.manage("bootstrap")
    fresh.manage("restore", str(archive))

    after = facts(fresh)
    assert after == before
    assert after["uses"][f"MDB-{RUN}".upper()] == 3
    check = f"from accounts.models import User; print(User.objects.get(username='dai-{RUN}').check_password('Cfps-analysis-2026'))"
    assert fresh.manage("shell", "-c", check).stdout.strip().splitlines()[-1] == "True"
    assert (Path(fresh.env["CFPS_VAR_DIR"]) / "secrets" / "HUB_CLIENT_SECRET").read_text() == (
        Path(old.env["CFPS_VAR_DIR"]) / "secrets" / "HUB_CLIENT_SECRET"
    ).read_text()


def test_a_sqlite_archive_is_refused_by_a_mariadb_system(scratch_database, tmp_path):
    sqlite = PortalProcess(tmp_path / "sqlite")
    sqlite.manage("migrate", "--noinput")
    sqlite.manage("backup", "--without-homes", "--output", str(tmp_path / "backups"))
    archive = next((tmp_path / "backups").glob("cfps-backup-*.tar"))
    mariadb = PortalProcess(tmp_path / "mariadb", extra_env={"DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DATABASE}"})
    scratch_database.migrated(mariadb)
    result = subprocess.run([sys.executable, "manage.py", "restore", str(archive)], cwd=REPO, env=mariadb.env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0
    assert "holds a sqlite portal database but DATABASE_URL names mysql" in result.stderr


def test_a_dump_with_shell_lines_runs_no_command_when_restored(scratch_database, tmp_path):
    """The `mariadb` client runs `\\!` lines as shell commands (as root, for `restore`) unless sandboxed: a
    forged dump with one, checksums recomputed, must not run it (issue 20.8)."""
    from tests.ops.test_restore_forged_archive import forge, plain

    env = {"DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DATABASE}", "HUB_PORT": str(free_port())}
    portal = PortalProcess(tmp_path / "portal", extra_env=env)
    scratch_database.migrated(portal)
    portal.manage("backup", "--without-homes", "--output", str(tmp_path / "backups"))
    genuine = next((tmp_path / "backups").glob("cfps-backup-*.tar"))
    marker = tmp_path / "ran-as-root"
    with tarfile.open(genuine) as tar:
        dump = tar.extractfile("portal-db.sql").read()
    evil = f"\\! touch {marker}\n".encode() + dump

    def without_dump(manifest):
        manifest["parts"] = [part for part in manifest["parts"] if part["kind"] != "portal-db"]

    forged = forge(
        genuine, tmp_path / "forged.tar", [plain("portal-db.sql", evil)],
        [{"kind": "portal-db", "engine": "mysql"}], without_dump,
    )  # fmt: skip
    result = subprocess.run([sys.executable, "manage.py", "restore", str(forged), "--force"], cwd=REPO,
                            env=portal.env, capture_output=True, text=True)  # fmt: skip
    assert not marker.exists(), "the dump's shell line ran"
    assert result.returncode != 0 and "loading the database dump failed" in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line
