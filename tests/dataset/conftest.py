"""Dataset fixtures: the real MariaDB on 127.0.0.1:3306 (root over TCP, as ./test.sh and CI have it), a
throwaway database and read-only account per test session, the synthetic sample in a temporary data folder,
and the management commands run as real processes (their exit code and one-line errors are what an operator
sees). Nothing is mocked. Without MariaDB these tests are skipped, and FAIL when CI=true.

Everything a test creates on the server is named cfps_t<random>... and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.config import dataset
from tests.live import REPO, prepare_secrets
from userspace.datafolder import sync_data_folder

ADMIN_URL = os.environ.get("CFPS_TEST_MARIADB_ADMIN_URL", "mysql://root@127.0.0.1:3306")
HOSTS = ("localhost", "127.0.0.1")


def require_mariadb():
    import MySQLdb

    admin = dataset.parse_mysql_url(ADMIN_URL, "CFPS_TEST_MARIADB_ADMIN_URL")
    try:
        conn = MySQLdb.connect(**admin.connect_kwargs(), connect_timeout=3, autocommit=True)
        conn.cursor().execute("SELECT 1")
        return conn
    except MySQLdb.Error as exc:
        message = f"MariaDB at {admin.host}:{admin.port} cannot be used as {admin.user} ({exc}); ./test.sh starts it"
        pytest.skip(message)


@dataclass
class Server:
    """A scratch database and account on the real server, through the admin (root) connection."""

    conn: object
    database: str
    user: str
    password: str
    users: set
    databases: set

    def url(self, user=None, password=None, database=None) -> str:
        return dataset.MysqlURL(
            user or self.user, password or self.password, "127.0.0.1", 3306, database or self.database
        ).url()

    def sql(self, statement: str, args=None) -> list[tuple]:
        cursor = self.conn.cursor()
        cursor.execute(statement, args)
        return list(cursor.fetchall()) if cursor.description else []

    def grants(self, user=None, hosts=HOSTS) -> dict[str, list[str]]:
        return {h: sorted(r[0] for r in self.sql(f"SHOW GRANTS FOR '{user or self.user}'@'{h}'")) for h in hosts}

    def new_name(self, kind: str) -> str:
        name = f"cfps_t{secrets.token_hex(4)}_{kind}"
        (self.databases if kind == "db" else self.users).add(name)
        return name

    def connect_as(self, user=None, password=None, database=None):
        import MySQLdb

        return MySQLdb.connect(
            host="127.0.0.1",
            port=3306,
            user=user or self.user,
            password=password or self.password,
            database=database or self.database,
            connect_timeout=3,
        )


@pytest.fixture(scope="session")
def server():
    conn = require_mariadb()
    token = secrets.token_hex(4)
    srv = Server(conn, f"cfps_t{token}_db", f"cfps_t{token}_ro", "Ro-" + secrets.token_urlsafe(12), set(), set())
    srv.users.add(srv.user)
    srv.databases.add(srv.database)
    try:
        yield srv
    finally:
        for user in srv.users:
            for host in (*HOSTS, "%"):
                srv.sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
        for name in srv.databases:
            srv.sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def manage(*args: str, env: dict[str, str], tmp: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`python manage.py <args>` as its own process, with only the given .env values (no .env file)."""
    full = dict(os.environ)
    for key in list(full):
        if key.startswith("DATASET_") or key in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}:
            del full[key]
    full.update({"CFPS_ENV_FILE": "/dev/null", "CFPS_VAR_DIR": str(tmp / "var"), "APP_PROFILE": "dev", **env})
    prepare_secrets(full)  # var/ is new: its secrets first, as ./run.sh --prepare makes them
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def dataset_env(server) -> dict[str, str]:
    """The .env of a MariaDB installation whose read-only account is the session's scratch user."""
    return {
        "DATASET_DATABASE_URL": server.url(),
        "DATASET_ADMIN_URL": ADMIN_URL,
        "DATASET_USER_HOST": ",".join(HOSTS),
    }


@pytest.fixture(scope="session")
def loaded(server, dataset_env, tmp_path_factory):
    """The sample loaded into the scratch database and the read-only account provisioned, once."""
    tmp = tmp_path_factory.mktemp("loaded")
    manage("load_sample_data", env=dataset_env, tmp=tmp)
    manage("provision_dataset_user", env=dataset_env, tmp=tmp)
    return server


@pytest.fixture(scope="session")
def data_folder(tmp_path_factory) -> Path:
    """A data folder as the hub fills it (userspace/datafolder.py), with the SQLite sample in sample/."""
    folder = tmp_path_factory.mktemp("data")
    sync_data_folder(folder)
    manage("load_sample_data", "--sqlite", str(dataset.sample_path(folder)), env={}, tmp=folder.parent)
    return folder
