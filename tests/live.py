"""Run the real portal (gunicorn + the `dev` profile) as a separate process for end-to-end tests.

Why a subprocess and not pytest-django's live_server: the browser must talk to the same WSGI server,
settings and static-file pipeline (collectstatic + whitenoise) that `./run.sh` uses, and later tests start
JupyterHub next to it, which needs a portal that outlives a single Django test transaction.

Plain functions and classes; fixtures (e.g. tests/browser/conftest.py) import them.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
CHROMIUM = Path("/usr/bin/chromium")

# Never let a proxy from the environment see test traffic: everything here talks to 127.0.0.1 only.
_LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> str:
    """Path of Debian's Chromium; fails in CI, skips elsewhere, when it is not installed."""
    import pytest

    if CHROMIUM.exists():
        return str(CHROMIUM)
    message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium fonts-noto-cjk`"
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def check_cjk_font() -> None:
    """Screenshots of a Chinese UI are worthless without a Chinese font (text renders as boxes).

    Fails in CI; elsewhere only warns, since the DOM assertions still hold.
    """
    import shutil
    import warnings

    import pytest

    fc_list = shutil.which("fc-list")
    found = (
        fc_list
        and subprocess.run(
            [fc_list, ":lang=zh-cn", "family"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    if found:
        return
    message = "no Chinese font found by `fc-list :lang=zh-cn`: install fonts-noto-cjk"
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    warnings.warn(message + "; screenshots will show boxes instead of Chinese", stacklevel=2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log file)"


class PortalError(RuntimeError):
    pass


class PortalProcess:
    """The portal served by gunicorn on 127.0.0.1:<free port>, with its own throwaway SQLite database.

    with PortalProcess(tmp_path) as portal:
        code = portal.manage("create_invite", "--max-uses", "1").stdout.splitlines()[-1]
        page.goto(portal.url("/accounts/signup/"))
    """

    START_TIMEOUT = 30.0

    def __init__(self, tmp_path: Path, extra_env: dict[str, str] | None = None):
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp_path / "gunicorn.log"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)  # let manage.py / wsgi.py pick it from APP_PROFILE
        env.update(
            {
                # No .env from the developer's checkout: every value below is explicit.
                "CFPS_ENV_FILE": "/dev/null",
                "APP_PROFILE": "dev",
                # Always SQLite, even when the outer suite runs on MariaDB: the live process gets its own
                # throwaway database in tmp_path, so it never touches (or races with) the suite's test
                # database, and it is deleted with tmp_path.
                "DATABASE_URL": f"sqlite:///{self.tmp_path.resolve() / 'portal.sqlite3'}",
                "SECRET_KEY": "live-test-" + secrets.token_urlsafe(40),
                "PORT": str(self.port),
                "DEBUG": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        self.env = env

    # --- commands ---------------------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` against this portal's database; raises with the output on failure."""
        cmd = [sys.executable, "manage.py", *args]
        try:
            return subprocess.run(
                cmd, cwd=REPO, env=self.env, capture_output=True, text=True, check=True, timeout=timeout
            )
        except subprocess.CalledProcessError as exc:
            raise PortalError(
                f"`{' '.join(cmd)}` exited with {exc.returncode}\n"
                f"--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}"
            ) from None

    # --- server -----------------------------------------------------------------------------------
    def gunicorn_command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gunicorn"]
        if GUNICORN_CONF.exists():
            cmd += ["-c", str(GUNICORN_CONF)]
        # Command-line flags override the config file, so this works with or without it. One process with
        # threads, as in the embedded default: the in-process rate-limit cache then sees every request.
        cmd += ["-b", f"127.0.0.1:{self.port}", "-w", "1", "--threads", "4"]
        # gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default, one path shared by every
        # instance on the machine; a test server must not take it over from a running ./run.sh.
        cmd += ["--no-control-socket", "portal.wsgi"]
        return cmd

    def start(self) -> PortalProcess:
        if self.proc is not None:
            raise PortalError("portal already started")
        self.manage("migrate", "--noinput")
        # Translations: *.mo files are git-ignored build output, so compile them like a deploy would.
        # --ignore keeps Django from walking into the virtualenv's own locale folders.
        self.manage("compilemessages", "--ignore=.venv", "--ignore=node_modules", "--ignore=var")
        # STATIC_ROOT is <repo>/var/static (git-ignored), the same folder ./run.sh collects into.
        self.manage("collectstatic", "--noinput", "-v", "0")
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.gunicorn_command(),
            cwd=REPO,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.START_TIMEOUT
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PortalError(
                    f"gunicorn exited with {self.proc.returncode} before answering; log tail:\n{_tail(self.log_path)}"
                )
            try:
                with _LOCAL_OPENER.open(self.url("/"), timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except OSError as exc:  # connection refused while gunicorn boots
                last_error = repr(exc)
            time.sleep(0.2)
        raise PortalError(
            f"portal did not answer GET / with 200 within {self.START_TIMEOUT:.0f}s (last: {last_error}); "
            f"log tail:\n{_tail(self.log_path)}"
        )

    def url(self, path: str = "/") -> str:
        return self.base_url + "/" + path.lstrip("/")

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> PortalProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
