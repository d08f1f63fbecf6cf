"""A test's OWN Redis or MariaDB server, on a free loopback port with its data folder in tmp_path, or its own
Docker engine (OwnDockerEngine), for the tests that stop a service on purpose: the machine's shared ones
(3306, 6379, /var/run/docker.sock) are never touched.

    with OwnRedis(tmp_path) as redis:
        redis.url            # redis://127.0.0.1:<port>/0
        redis.stop(); redis.start()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.deploy.conftest import require_root
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


class OwnDockerEngine:
    """A Docker engine of the test's own, for the tests that stop the engine: the machine's dockerd, which
    other tests use at the same time, is never restarted.

    dockerd and its containerd keep every file in one short folder under /tmp (a unix socket's path has at
    most 107 bytes), the engine's data on a tmpfs there (loading the 750 MB notebook image takes half the
    time it takes on this machine's disk); no daemon.json from /etc, no bridge, no iptables rules: its
    containers use the host's network or none. containerd is separate from dockerd, as on Debian, where
    restarting docker.service leaves containerd.service running.

        with OwnDockerEngine(tmp_path) as engine:
            engine.load_image("cfps-notebook:latest")   # from the machine's engine
            env["DOCKER_HOST"] = engine.host           # unix:///tmp/cfps-de-…/docker.sock
            engine.stop(); engine.start()              # the same data: images, volumes, containers stay
    """

    START_TIMEOUT = 60
    STOP_TIMEOUT = 60  # dockerd stops each running container first (SIGTERM, SIGKILL after 10 s)

    def __init__(self, tmp_path: Path):
        require_root("run a Docker engine of its own")
        self.dockerd_binary = require("dockerd", "docker.io")
        self.containerd_binary = require("containerd", "containerd")
        self.logs = Path(tmp_path) / "docker-engine"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.dir: Path | None = None
        self.containerd: subprocess.Popen | None = None
        self.dockerd: subprocess.Popen | None = None
        self.load_seconds: float | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, check=check,
                              timeout=timeout)  # fmt: skip

    # --- processes --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cfps-de-", dir="/tmp"))
        data = self.dir / "data"
        data.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0700", "cfps-test-engine", str(data)], check=True)
        (self.dir / "daemon.json").write_text("{}")
        (self.dir / "containerd.toml").write_text(
            "version = 2\n"
            f'root = "{data}/containerd"\nstate = "{self.dir}/containerd"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.dir}/containerd.sock"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
        )

    def _popen(self, command: list[str], name: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait(self, proc: subprocess.Popen, ready, what: str) -> None:
        deadline = time.monotonic() + self.START_TIMEOUT
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (self.logs / f"{Path(proc.args[0]).name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{what} (exit code {proc.poll()}):\n{log}")
            time.sleep(0.1)

    def answers(self) -> bool:
        """True when dockerd answers /_ping on its socket."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            try:
                sock.connect(f"{self.dir}/docker.sock")
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.0 200")
            except OSError:
                return False

    def start(self):
        if self.dir is None:
            self._prepare()
        if self.containerd is None:
            self.containerd = self._popen([self.containerd_binary, "--config", str(self.dir / "containerd.toml")],
                                          "containerd")  # fmt: skip
            self._wait(self.containerd, (self.dir / "containerd.sock").exists, "containerd did not start")
        self.dockerd = self._popen(
            [self.dockerd_binary, f"--config-file={self.dir / 'daemon.json'}", f"--host={self.host}",
             f"--containerd={self.dir / 'containerd.sock'}", f"--data-root={self.dir / 'data' / 'docker'}",
             f"--exec-root={self.dir / 'exec'}", f"--pidfile={self.dir / 'dockerd.pid'}", "--storage-driver=overlay2",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"],
            "dockerd",
        )  # fmt: skip
        self._wait(self.dockerd, self.answers, "dockerd did not answer")
        return self

    @staticmethod
    def _end(proc: subprocess.Popen | None, timeout: float) -> None:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop dockerd as `systemctl stop docker` does (SIGTERM), and wait until it has exited."""
        self._end(self.dockerd, self.STOP_TIMEOUT)
        self.dockerd = None

    def close(self) -> None:
        """Stop both daemons, end what they left running, unmount and remove the folder."""
        self.stop()
        self._end(self.containerd, 30)
        self.containerd = None
        if self.dir is None:
            return
        for pid in self._processes_using_the_folder():  # containerd-shim-runc-v2 of a container that outlived dockerd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount_point in self._mounts():
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _mounts(self) -> list[str]:
        """Mount points in the folder, the deepest first (mountinfo's fifth field; spaces come as \\040)."""
        prefix = f"{self.dir}/"
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        points = [line.split()[4].replace("\\040", " ") for line in lines]
        return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)

    def _processes_using_the_folder(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                with contextlib.suppress(OSError):
                    if str(self.dir).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- images -----------------------------------------------------------------------------------
    def load_image(self, image: str) -> None:
        """Copy `image` from the machine's engine (DOCKER_HOST as the tests found it) into this one. By id, so
        that a concurrent `build_image` moving the tag cannot break the copy halfway."""
        started = time.monotonic()
        image_id = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True,
                                  text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
        save = subprocess.Popen(["docker", "save", image_id], stdout=subprocess.PIPE)
        try:
            load = subprocess.run(["docker", "load", "--quiet"], stdin=save.stdout, env=self.env(),
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
        finally:
            save.stdout.close()
            save.wait(timeout=60)
        if save.returncode or load.returncode:
            raise RuntimeError(f"docker save {image} | docker load failed: {load.stderr.strip()}")
        self.docker("tag", image_id, image)
        self.load_seconds = time.monotonic() - started
