"""The operators' side of the dataset: the read-only account on a MariaDB/MySQL server
(`provision_dataset_user`, `load_sample_data`) and IPython's kernel config for local kernels. What a
dataset URL is and what a notebook sees is configuration: portal/config/dataset.py."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from portal.config.dataset import MysqlURL
from portal.config.env import BASE_DIR

KERNEL_CONFIG = BASE_DIR / "singleuser" / "notebook" / "ipython_kernel_config.py"


class DatasetError(RuntimeError):
    """Talking to the dataset server failed; the message is one line meant for an operator."""


def install_kernel_config(prefix: Path | None = None, dry_run: bool = False) -> tuple[Path, bool]:
    """Put singleuser/notebook/ipython_kernel_config.py on IPython's config path for kernels of this Python
    (<prefix>/etc/ipython/, which IPython reads for every kernel it starts from that prefix; a container
    image puts the same file in /etc/ipython/). Returns the target and whether it changed."""
    target = Path(prefix or sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    source = KERNEL_CONFIG.read_bytes()
    if target.exists() and target.read_bytes() == source:
        return target, False
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".new")
        staging.write_bytes(source)
        staging.replace(target)
    return target, True


# --- the read-only account on MariaDB/MySQL --------------------------------------------------------------
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}  # no server, refused, unknown host, gone away, lost
_ADMIN_REFUSED = {1045}  # wrong user or password
_NO_RIGHTS = {1044, 1142, 1143, 1227, 1410, 1396}


def connect_admin(admin: MysqlURL, database: str | None = None):
    """A MySQLdb connection as the admin account; one-line DatasetError when that is impossible."""
    import MySQLdb

    kwargs = admin.connect_kwargs()
    if database:
        kwargs["database"] = database
    try:
        return MySQLdb.connect(**kwargs, charset="utf8mb4", connect_timeout=5, autocommit=True)
    except MySQLdb.Error as exc:
        raise explain(exc, admin) from None


@contextlib.contextmanager
def admin_session(admin: MysqlURL, database: str | None = None):
    """connect_admin() as a `with` block: closes the connection, and turns any MySQLdb error inside the
    block into the same one-line DatasetError."""
    import MySQLdb

    conn = connect_admin(admin, database)
    try:
        yield conn
    except MySQLdb.Error as exc:
        raise explain(exc, admin) from None
    finally:
        conn.close()


def create_database_statement(name: str) -> str:
    """CREATE DATABASE for the dataset, idempotent, in the character set the CFPS labels need."""
    quoted = "`" + name.replace("`", "``") + "`"
    return f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"


def explain(exc, admin: MysqlURL) -> DatasetError:
    """Turn a MySQLdb error into one line that says what to do."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = " ".join(str(exc.args[-1] if exc.args else exc).split())
    if code in _UNREACHABLE:
        return DatasetError(
            f"cannot reach the dataset server at {admin.host}:{admin.port} (DATASET_ADMIN_URL): {message}"
        )
    if code in _ADMIN_REFUSED:
        return DatasetError(f"the dataset server refused the admin account in DATASET_ADMIN_URL: {message}")
    if code in _NO_RIGHTS:
        return DatasetError(
            f"the admin account {admin.user!r} in DATASET_ADMIN_URL lacks the rights for this "
            f"(it needs CREATE USER, SELECT on mysql.*, and ALL on the dataset database WITH GRANT OPTION, "
            f"as root has): {message}"
        )
    return DatasetError(f"dataset server error {code}: {message}")


def native_password_hash(password: str) -> str:
    """What mysql_native_password stores: '*' + hex(SHA1(SHA1(password))), upper case."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def grant_database(name: str) -> str:
    """A database name for GRANT: backquoted, with the LIKE wildcards `_` and `%` escaped (GRANT treats
    them as patterns, so `cfps_x` would also match `cfpsAx`)."""
    return "`" + name.replace("`", "``").replace("_", r"\_").replace("%", r"\%") + "`"


_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<db>`(?:[^`]|``)*`|\*)\.(?P<tbl>`(?:[^`]|``)*`|\*) TO (?P<rest>.*)$")


def parse_grants(lines: list[str]) -> set[tuple[str, str, str]]:
    """SHOW GRANTS lines as {(privilege, database, table)}; anything unusual as one ('?', line, '')."""
    found = set()
    for line in lines:
        match = _GRANT.match(line)
        if not match or "WITH GRANT OPTION" in match["rest"] or "(" in match["privs"]:
            found.add(("?", line, ""))
            continue
        db = match["db"].strip("`").replace("``", "`").replace(r"\_", "_").replace(r"\%", "%")
        for priv in match["privs"].split(","):
            found.add((priv.strip().upper(), db, match["tbl"].strip("`")))
    return found


@dataclass
class AccountState:
    host: str
    changes: list[str] = field(default_factory=list)
    statements: list[tuple[str, str]] = field(default_factory=list)  # (sql, sql with the password masked)

    def add(self, change: str, sql: str, shown: str | None = None) -> None:
        if change not in self.changes:
            self.changes.append(change)
        self.statements.append((sql, shown or sql))


@dataclass
class ProvisionPlan:
    database_statements: list[str]
    accounts: list[AccountState]
    stray_hosts: list[str]
    warnings: list[str] = field(default_factory=list)
    limits: str = ""  # the limits every account gets, in words

    @property
    def statements(self) -> list[tuple[str, str]]:
        return [(s, s) for s in self.database_statements] + [s for a in self.accounts for s in a.statements]


def describe_limits(max_connections: int, max_statement_seconds: float) -> str:
    connections = f"at most {max_connections} connections" if max_connections else "no connection limit"
    seconds = f"{max_statement_seconds:g} s per statement" if max_statement_seconds else "no statement time limit"
    return f"{connections}, {seconds}"


def plan_read_only_account(
    conn,
    account: MysqlURL,
    hosts: list[str],
    admin: MysqlURL,
    max_connections: int,
    max_statement_seconds: float,
) -> ProvisionPlan:
    """Compare the server with what the account should be and list the SQL that would make it so."""
    import MySQLdb

    def literal(value: str) -> str:
        return "'" + conn.escape_string(value.encode()).decode() + "'"

    cursor = conn.cursor()
    warnings = []
    cursor.execute("SELECT VERSION(), @@max_connections")
    version, server_max_connections = cursor.fetchone()
    mariadb = "mariadb" in version.lower()
    if not mariadb and max_statement_seconds:
        warnings.append(
            f"{version} is MySQL, which has no per-account statement time: DATASET_MAX_STATEMENT_SECONDS is "
            "not applied (set max_execution_time in the server's configuration instead)"
        )
        max_statement_seconds = 0.0
    if max_connections >= server_max_connections or not max_connections:
        warnings.append(
            f"DATASET_MAX_CONNECTIONS={max_connections} does not keep the students below the server's "
            f"max_connections ({server_max_connections}): their code could use up every connection"
        )
    limits = f"WITH MAX_USER_CONNECTIONS {max_connections}"
    if mariadb:
        limits += f" MAX_STATEMENT_TIME {max_statement_seconds:g}"
    database_statements = []
    cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (account.database,))
    if not cursor.fetchone():
        database_statements.append(create_database_statement(account.database))
    # MariaDB's mysql.user (a view over mysql.global_priv) shows both limits; MySQL's has no statement time.
    statement_time = "max_statement_time" if mariadb else "0"
    cursor.execute(
        f"SELECT Host, plugin, authentication_string, max_user_connections, {statement_time} "
        "FROM mysql.user WHERE User = %s",
        (account.user,),
    )
    existing = {row[0]: (row[1] or "", row[2] or "", int(row[3] or 0), float(row[4] or 0)) for row in cursor}
    grant_select = f"GRANT SELECT ON {grant_database(account.database)}.*"
    accounts = []
    for host in hosts:
        who = f"{literal(account.user)}@{literal(host)}"
        state = AccountState(host)
        identified = f"IDENTIFIED BY {literal(account.password)}"
        masked = "IDENTIFIED BY '********'"
        if host not in existing:
            state.add("created", f"CREATE USER {who} {identified} {limits}", f"CREATE USER {who} {masked} {limits}")
            state.add("created", f"{grant_select} TO {who}")
            accounts.append(state)
            continue
        plugin, auth, connections, seconds = existing[host]
        if plugin not in {"", "mysql_native_password"} or auth != native_password_hash(account.password):
            state.add("password updated", f"ALTER USER {who} {identified}", f"ALTER USER {who} {masked}")
        # The server keeps the statement time as DECIMAL(12,6).
        if connections != max_connections or round(seconds, 6) != round(max_statement_seconds, 6):
            state.add("limits set", f"ALTER USER {who} {limits}")
        try:
            cursor.execute(f"SHOW GRANTS FOR {who}")
        except MySQLdb.Error as exc:
            raise explain(exc, admin) from None
        grants = parse_grants([row[0] for row in cursor.fetchall()])
        wanted = {("SELECT", account.database, "*")}
        extra = {g for g in grants if g not in wanted and g[:2] != ("USAGE", "*")}
        if extra:
            state.add("grants reset", f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who}")
            state.add("grants reset", f"{grant_select} TO {who}")
        elif not wanted <= grants:
            state.add("SELECT granted", f"{grant_select} TO {who}")
        accounts.append(state)
    stray = sorted(set(existing) - set(hosts))
    return ProvisionPlan(
        database_statements, accounts, stray, warnings, describe_limits(max_connections, max_statement_seconds)
    )


def apply_plan(conn, plan: ProvisionPlan, admin: MysqlURL) -> None:
    import MySQLdb

    cursor = conn.cursor()
    for sql, shown in plan.statements:
        try:
            cursor.execute(sql)
        except MySQLdb.Error as exc:
            error = explain(exc, admin)
            raise DatasetError(f"{error} (while running: {shown})") from None
