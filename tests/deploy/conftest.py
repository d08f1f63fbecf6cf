"""Deploy fixtures: the generators run as an operator runs them (`manage.py gen_*` in a subprocess), and what
they write is checked by the real tool (nginx, systemd-analyze, iptables-restore).

Each tool comes from Debian (./test.sh installs them). Without one, its tests skip locally and FAIL when
CI=true. Nginx only ever listens on 127.0.0.1 here, on free ports, with every path it writes in tmp_path.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live import REPO, prepare_secrets, public_url

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
DOMAIN = "cfps.example.edu.cn"


def require_tool(name: str, package: str) -> str:
    """The tool's path; skips (a failure in CI: tests/conftest.py) when it is missing."""
    path = shutil.which(name, path=SBIN_PATH)
    if path:
        return path
    pytest.skip(f"{name} is missing: install it with `apt-get install -y {package}`")


def require_root(why: str) -> None:
    if os.geteuid() == 0:
        return
    pytest.skip(f"needs root (run the suite as root, as CI does): {why}")


def manage(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`manage.py <args>` in a subprocess with only the given configuration (no .env). A var/ of its own
    (CFPS_VAR_DIR in env) first gets its secrets, as ./run.sh --prepare makes them."""
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    base["CFPS_ENV_FILE"] = "/dev/null"
    if "CFPS_VAR_DIR" in (env or {}):
        prepare_secrets({**base, **env})
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def self_signed_certificate(folder: Path, name: str, *more: str) -> tuple[Path, Path]:
    """A throwaway certificate and key for `name` and `more` names (also valid for 127.0.0.1), by openssl."""
    openssl = require_tool("openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}"]
        + ["-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in (name, *more)) + ",IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def wrap_site(site: Path, folder: Path, workers: str = "1") -> Path:
    """A minimal nginx.conf around a generated site: every path it writes (pid, logs, temp) in `folder`;
    `workers` is worker_processes ("auto": one per core, as Debian's nginx.conf has it)."""
    conf = folder / "nginx.conf"
    # Workers run as the user that starts nginx (root here), so they can use the private tmp folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"{user}worker_processes {workers};\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        f"    access_log {folder / 'access.log'};\n{temp}\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


def nginx_test(conf: Path, prefix: Path) -> subprocess.CompletedProcess:
    nginx = require_tool("nginx", "nginx")
    return subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )


class Nginx:
    """A real nginx (in the foreground, as a child process) serving a generated site on 127.0.0.1."""

    def __init__(self, site: Path, folder: Path, ports: list[int], workers: str = "1"):
        self.folder, self.ports = folder, ports
        self.conf = wrap_site(site, folder, workers)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        nginx = require_tool("nginx", "nginx")
        checked = nginx_test(self.conf, self.folder)
        assert checked.returncode == 0, f"nginx -t:\n{checked.stderr}"
        self.proc = subprocess.Popen(
            [nginx, "-c", str(self.conf), "-p", str(self.folder), "-e", str(self.folder / "error.log")]
            + ["-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not all(self._accepts(port) for port in self.ports):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"nginx did not start on {self.ports}:\n{self.error_log()}")
            time.sleep(0.1)
        return self

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.exists() else "(no error log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: workers finish open requests
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class BehindNginx:
    """A `Stack` as browsers see it on a server: through Nginx on `port`, the portal's host 127.0.0.1 and the
    hub's `hub_host` (localhost unless given), each student on `<name>.<hub_host>` (over https with
    `scheme="https"`). Quacks like `Stack` for tests/e2e/flows.py, whose clients check the certificate against
    `verify`: the system's CAs, or only `cafile` when given."""

    def __init__(
        self, stack, nginx: Nginx, port: int, scheme: str = "http", cafile: Path | None = None, hub_host="localhost"
    ):
        self.stack, self.nginx = stack, nginx
        self.base_url, self.hub_base_url = f"{scheme}://127.0.0.1:{port}", f"{scheme}://{hub_host}:{port}"
        self.verify = ssl.create_default_context(cafile=str(cafile)) if cafile else True

    def __getattr__(self, name):
        return getattr(self.stack, name)

    def url(self, path: str = "/") -> str:
        return public_url(self, path)

    def user_url(self, name: str, path: str = "") -> str:
        return self.url(f"/jupyter/user/{name}/{path.lstrip('/')}")

    def log_tail(self, lines: int = 80) -> str:
        return f"{self.stack.log_tail(lines)}\n--- nginx ---\n{self.nginx.error_log()}"
