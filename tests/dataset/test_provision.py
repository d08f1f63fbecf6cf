"""provision_dataset_user on the real MariaDB: the notebooks' account can read the dataset and nothing else,
running the command again changes nothing, and every failure is one line an operator can act on."""

from __future__ import annotations

import pytest

from tests.dataset.conftest import ADMIN_URL, HOSTS, manage
from tests.live import free_port

# What students' SQL might try; every one must be refused by the server itself.
REFUSED = {
    "INSERT": "INSERT INTO adult_2018 (pid) VALUES (1)",
    "UPDATE": "UPDATE adult_2018 SET income = 0",
    "DELETE": "DELETE FROM adult_2018",
    "DROP": "DROP TABLE adult_2018",
    "CREATE": "CREATE TABLE my_table (x INT)",
    "ALTER": "ALTER TABLE adult_2018 ADD COLUMN x INT",
    "GRANT": "GRANT SELECT ON {db}.* TO 'someone_else'@'localhost'",
    "CREATE DATABASE": "CREATE DATABASE {db}_copy",
    "SELECT outside the dataset": "SELECT User FROM mysql.user",
}


def test_read_only_account_can_select_the_dataset(loaded):
    conn = loaded.connect_as()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM adult_2018 WHERE income > 0")
        assert cursor.fetchone()[0] > 1000
        cursor.execute("SELECT label FROM cfps_variables WHERE table_name = 'adult_2018' AND variable = 'edu'")
        assert cursor.fetchone()[0] == "最高学历"
    finally:
        conn.close()


@pytest.mark.parametrize("statement", REFUSED.values(), ids=REFUSED.keys())
def test_read_only_account_is_refused(loaded, statement):
    import MySQLdb

    conn = loaded.connect_as()
    try:
        with pytest.raises(MySQLdb.OperationalError) as refused:
            conn.cursor().execute(statement.format(db=loaded.database))
    finally:
        conn.close()
    code, message = refused.value.args
    assert code in {1044, 1142, 1227}, message
    assert "denied" in message
    assert loaded.sql(f"SELECT COUNT(*) FROM `{loaded.database}`.adult_2018")[0][0] > 1000  # untouched


def test_account_has_select_on_the_dataset_database_only(loaded):
    for host, grants in loaded.grants().items():
        assert len(grants) == 2, grants
        assert grants[0].startswith(f"GRANT SELECT ON `{loaded.database.replace('_', chr(92) + '_')}`.* TO")
        assert grants[1].startswith(f"GRANT USAGE ON *.* TO `{loaded.user}`@`{host}`")


def test_running_twice_changes_nothing(loaded, dataset_env, tmp_path):
    before = loaded.grants()
    result = manage("provision_dataset_user", env=dataset_env, tmp=tmp_path)
    assert loaded.grants() == before
    lines = result.stdout.splitlines()
    assert lines == [f"{loaded.user}@{h}: unchanged (SELECT on {loaded.database} only)" for h in HOSTS]


def test_new_account_is_created_for_every_host_and_database_if_missing(server, tmp_path):
    user, database = server.new_name("ro"), server.new_name("db")
    env = {
        "DATASET_DATABASE_URL": server.url(user=user, database=database),
        "DATASET_ADMIN_URL": ADMIN_URL,
        "DATASET_USER_HOST": ",".join(HOSTS),
    }
    result = manage("provision_dataset_user", env=env, tmp=tmp_path)
    assert f"database {database}: created" in result.stdout
    assert all(f"{user}@{h}: created" in result.stdout for h in HOSTS)
    server.connect_as(user=user, database=database).close()


def test_dry_run_prints_the_sql_with_the_password_masked_and_changes_nothing(server, tmp_path):
    user = server.new_name("ro")
    env = {
        "DATASET_DATABASE_URL": server.url(user=user),
        "DATASET_ADMIN_URL": ADMIN_URL,
        "DATASET_USER_HOST": "localhost",
    }
    result = manage("provision_dataset_user", "--dry-run", env=env, tmp=tmp_path)
    assert f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '********';" in result.stdout
    assert "GRANT SELECT ON" in result.stdout and "dry run: nothing was changed" in result.stdout
    assert server.password not in result.stdout + result.stderr
    assert server.sql("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (user,))[0][0] == 0


def loopback_account_env(server, user: str) -> dict[str, str]:
    """Configuration for a test account `user` allowed from 127.0.0.1 only."""
    return {
        "DATASET_DATABASE_URL": server.url(user=user),
        "DATASET_ADMIN_URL": ADMIN_URL,
        "DATASET_USER_HOST": "127.0.0.1",
    }


def test_changed_password_is_updated_and_only_then(server, tmp_path):
    import MySQLdb

    user = server.new_name("ro")
    env = loopback_account_env(server, user)
    manage("provision_dataset_user", env=env, tmp=tmp_path)
    env["DATASET_DATABASE_URL"] = server.url(user=user, password="New-" + server.password)
    assert "127.0.0.1: password updated" in manage("provision_dataset_user", env=env, tmp=tmp_path).stdout
    assert "127.0.0.1: unchanged" in manage("provision_dataset_user", env=env, tmp=tmp_path).stdout
    server.connect_as(user=user, password="New-" + server.password).close()
    with pytest.raises(MySQLdb.OperationalError):
        server.connect_as(user=user)


def test_extra_privileges_are_revoked(server, tmp_path):
    user = server.new_name("ro")
    env = loopback_account_env(server, user)
    manage("provision_dataset_user", env=env, tmp=tmp_path)
    server.sql(f"GRANT INSERT, DELETE ON `{server.database}`.* TO '{user}'@'127.0.0.1'")
    server.sql(f"GRANT SELECT ON mysql.* TO '{user}'@'127.0.0.1'")
    result = manage("provision_dataset_user", env=env, tmp=tmp_path)
    assert f"{user}@127.0.0.1: grants reset" in result.stdout
    grants = server.grants(user, hosts=["127.0.0.1"])["127.0.0.1"]
    assert len(grants) == 2 and grants[0].startswith("GRANT SELECT ON `cfps") and "INSERT" not in " ".join(grants)


def test_account_on_a_host_not_listed_is_reported(server, tmp_path):
    user = server.new_name("ro")
    server.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'x'")
    env = loopback_account_env(server, user)
    result = manage("provision_dataset_user", env=env, tmp=tmp_path)
    assert f"warning: {user}@% exists too but is not in DATASET_USER_HOST" in result.stderr


def one_line_error(result) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return lines[0]


def test_unreachable_server_is_one_line(server, tmp_path):
    env = {
        "DATASET_DATABASE_URL": server.url(),
        "DATASET_ADMIN_URL": f"mysql://root@127.0.0.1:{free_port()}",
    }
    for command in ("provision_dataset_user", "load_sample_data"):
        line = one_line_error(manage(command, env=env, tmp=tmp_path, check=False))
        assert "cannot reach the dataset server at 127.0.0.1:" in line


def test_admin_without_rights_is_one_line(server, tmp_path):
    weak = server.new_name("weak")
    server.sql(f"CREATE USER '{weak}'@'127.0.0.1' IDENTIFIED BY 'Weak-pass-1'")
    server.sql(f"GRANT SELECT ON `{server.database}`.* TO '{weak}'@'127.0.0.1'")
    env = {
        "DATASET_DATABASE_URL": server.url(user=server.new_name("ro")),
        "DATASET_ADMIN_URL": f"mysql://{weak}:Weak-pass-1@127.0.0.1:3306",
    }
    line = one_line_error(manage("provision_dataset_user", env=env, tmp=tmp_path, check=False))
    assert f"the admin account '{weak}' in DATASET_ADMIN_URL lacks the rights" in line
    assert "denied" in line


def test_wrong_admin_password_is_one_line(server, tmp_path):
    env = {"DATASET_DATABASE_URL": server.url(), "DATASET_ADMIN_URL": "mysql://root:wrong-password@127.0.0.1:3306"}
    line = one_line_error(manage("provision_dataset_user", env=env, tmp=tmp_path, check=False))
    assert "refused the admin account" in line


def test_embedded_default_needs_no_account(tmp_path):
    line = one_line_error(manage("provision_dataset_user", env={}, tmp=tmp_path, check=False))
    assert "DATASET_DATABASE_URL is empty" in line
