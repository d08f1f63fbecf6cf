"""A test's OWN Redis or MariaDB server, on a free loopback port with its data folder in tmp_path, for the
tests that stop a service on purpose: the machine's shared ones (3306, 6379) are never touched.

    with OwnRedis(tmp_path) as redis:
        redis.url            # redis://127.0.0.1:<port>/0
        redis.stop(); redis.start()
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.deploy.conftest import require_tool as require
from tests.live import free_port


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args[0]} does not listen on {port} after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


class _Server:
    def __init__(self, tmp_path: Path, name: str):
        self.dir = Path(tmp_path) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait_for_port(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class OwnRedis(_Server):
    def __init__(self, tmp_path: Path):
        super().__init__(tmp_path, "redis")
        self.binary = require("redis-server", "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir)]  # fmt: skip


class OwnMariaDB(_Server):
    """mariadbd with its own data folder; root without a password over TCP (grant tables skipped: the
    server only ever listens on 127.0.0.1 and dies with the test)."""

    def __init__(self, tmp_path: Path):
        super().__init__(tmp_path, "mariadb")
        self.binary = require("mariadbd", "mariadb-server")
        self.data = self.dir / "data"
        if not self.data.exists():
            install = require("mariadb-install-db", "mariadb-server")
            subprocess.run(
                [install, "--no-defaults", f"--datadir={self.data}", "--user=root", "--skip-test-db",
                 "--auth-root-authentication-method=normal"],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            self.binary, "--no-defaults", f"--datadir={self.data}", "--user=root", "--bind-address=127.0.0.1",
            f"--port={self.port}", f"--socket={self.dir / 'mysqld.sock'}", f"--pid-file={self.dir / 'mysqld.pid'}",
            "--skip-grant-tables", "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--log-error=" + str(self.log),
        ]  # fmt: skip

    def sql(self, statement: str) -> None:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            conn.cursor().execute(statement)
        finally:
            conn.close()
