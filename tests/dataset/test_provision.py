"""provision_dataset_user on the real MariaDB: the notebooks' account can read the dataset and nothing else,
running the command again changes nothing, and every failure is one line an operator can act on."""

from __future__ import annotations

import time

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
    limits = "at most 100 connections, 60 s per statement"
    assert lines == [f"{loaded.user}@{h}: unchanged (SELECT on {loaded.database} only; {limits})" for h in HOSTS]


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
    assert (
        f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '********' WITH MAX_USER_CONNECTIONS 100 MAX_STATEMENT_TIME 60;"
        in result.stdout
    )
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


# --- resource limits: one student's code cannot hold every connection or the server's time -----------------


def limits_of(server, user: str, host: str) -> tuple[int, float]:
    """(max_user_connections, max_statement_time) as MariaDB stores them, in mysql.global_priv."""
    rows = server.sql(
        "SELECT JSON_VALUE(Priv, '$.max_user_connections'), JSON_VALUE(Priv, '$.max_statement_time') "
        "FROM mysql.global_priv WHERE User = %s AND Host = %s",
        (user, host),
    )
    assert rows, f"no account {user}@{host}"
    return int(rows[0][0] or 0), float(rows[0][1] or 0)


def test_account_gets_connection_and_statement_time_limits_by_default(loaded):
    for host, grants in loaded.grants().items():
        assert limits_of(loaded, loaded.user, host) == (100, 60.0)
        usage = next(line for line in grants if line.startswith("GRANT USAGE"))
        assert "WITH MAX_USER_CONNECTIONS 100 MAX_STATEMENT_TIME 60" in usage, usage


def limited_account(server, tmp_path, **limits: str) -> str:
    user = server.new_name("ro")
    env = {**loopback_account_env(server, user), **limits}
    manage("provision_dataset_user", env=env, tmp=tmp_path)
    return user


def test_a_statement_longer_than_the_limit_is_interrupted_by_the_server(server, tmp_path):
    import time

    import MySQLdb

    user = limited_account(server, tmp_path, DATASET_MAX_STATEMENT_SECONDS="1")
    conn = server.connect_as(user=user)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT SLEEP(0.2)")  # shorter than the limit: runs to the end
        assert cursor.fetchone() == (0,)
        started = time.monotonic()
        with pytest.raises(MySQLdb.OperationalError) as interrupted:
            cursor.execute("SELECT SLEEP(3)")
        elapsed = time.monotonic() - started
        code, message = interrupted.value.args
        assert code == 1969 and "max_statement_time exceeded" in message, message
        assert elapsed < 2.5, f"the statement ran {elapsed:.1f} s, past the 1 s limit"
        # A heavy query, not just SLEEP, is cut off the same way.
        with pytest.raises(MySQLdb.OperationalError) as heavy:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, "
                "information_schema.COLUMNS c"
            )
        assert heavy.value.args[0] == 1969, heavy.value.args
        cursor.execute("SELECT 1")  # the connection stays usable afterwards
        assert cursor.fetchone() == (1,)
    finally:
        conn.close()


def test_connections_beyond_the_limit_are_refused(server, tmp_path):
    import MySQLdb

    user = limited_account(server, tmp_path, DATASET_MAX_CONNECTIONS="2")
    held = [server.connect_as(user=user) for _ in range(2)]
    try:
        with pytest.raises(MySQLdb.OperationalError) as refused:
            server.connect_as(user=user)
        code, message = refused.value.args
        assert code == 1226 and "max_user_connections" in message, message
    finally:
        for conn in held:
            conn.close()
    # A freed connection can be used again: the server counts a closed one off in its own thread, just after
    # the client's close returns, so the first attempt may still be refused (seen once in CI).
    deadline = time.monotonic() + 10
    while True:
        try:
            server.connect_as(user=user).close()
            break
        except MySQLdb.OperationalError as exc:
            if exc.args[0] != 1226 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_changed_limits_are_updated_and_only_then(server, tmp_path):
    user = limited_account(server, tmp_path)
    env = {**loopback_account_env(server, user), "DATASET_MAX_CONNECTIONS": "7", "DATASET_MAX_STATEMENT_SECONDS": "2.5"}
    assert f"{user}@127.0.0.1: limits set" in manage("provision_dataset_user", env=env, tmp=tmp_path).stdout
    assert limits_of(server, user, "127.0.0.1") == (7, 2.5)
    again = manage("provision_dataset_user", env=env, tmp=tmp_path).stdout
    assert (
        again.strip()
        == f"{user}@127.0.0.1: unchanged (SELECT on {server.database} only; at most 7 connections, 2.5 s per statement)"
    )


def test_zero_means_no_limit_and_a_warning_about_connections(server, tmp_path):
    user = server.new_name("ro")
    env = {**loopback_account_env(server, user), "DATASET_MAX_CONNECTIONS": "0", "DATASET_MAX_STATEMENT_SECONDS": "0"}
    result = manage("provision_dataset_user", env=env, tmp=tmp_path)
    assert limits_of(server, user, "127.0.0.1") == (0, 0.0)
    assert "warning: DATASET_MAX_CONNECTIONS=0 does not keep the students below the server's max_connections" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("DATASET_MAX_CONNECTIONS", "many"), ("DATASET_MAX_CONNECTIONS", "-1"), ("DATASET_MAX_STATEMENT_SECONDS", "1m")],
)
def test_malformed_limit_is_one_line(server, tmp_path, key, value):
    env = {**loopback_account_env(server, server.new_name("ro")), key: value}
    line = one_line_error(manage("provision_dataset_user", env=env, tmp=tmp_path, check=False))
    assert key in line
