"""Run the real portal (gunicorn + the `dev` profile) as a separate process for end-to-end tests.

Why a subprocess and not pytest-django's live_server: the browser must talk to the same WSGI server,
settings and static-file pipeline (collectstatic + whitenoise) that `./run.sh` uses, and later tests start
JupyterHub next to it, which needs a portal that outlives a single Django test transaction.

The processes are run.sh's supervisor's (supervise/supervisor.py, used as a library in pytest's process; its
docstring says why not as a command per stack): it starts them with their marker lines in their logs, waits
until they answer (the end of the log when one dies first or time runs out), starts a dead hub again, and
stops them in reverse order with everything they started. Only the preparation (migrate, collectstatic,
bootstrap) is run.sh's own work done here.

Plain functions and classes; fixtures (e.g. tests/browser_plugin.py) use them.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from supervise import NotReady, Process, StartError, Supervisor
from supervise import descendants as descendants  # for the tests that count what a process started

REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
CHROMIUM = Path("/usr/bin/chromium")


def run_async(make_coroutine, timeout: float = 90):
    """asyncio.run(make_coroutine()) in a thread of its own, with its result or its exception: a browser test
    earlier in the session can leave an event loop running in the main thread, where asyncio.run() refuses."""
    import asyncio
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the coroutine did not finish within {timeout:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> str:
    """Path of Debian's Chromium; skips (a failure in CI: tests/conftest.py) when it is not installed."""
    import pytest

    if CHROMIUM.exists():
        return str(CHROMIUM)
    pytest.skip(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium fonts-noto-cjk`")


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
    if in_ci():  # outside CI this only warns, no skip: so the skip-to-failure hook cannot see it
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


def new_supervisor() -> Supervisor:
    """run.sh's supervisor for one stack's processes; "tests" in the logs' marker lines where run.sh has run.sh."""
    return Supervisor(label="tests", stop_timeout=30)


def start_and_wait(
    supervisor: Supervisor, process: Process, timeout: float, error: type[Exception], after_death: bool = False
) -> None:
    """Start `process` (after_death: as the supervisor restarts a dead one) and wait until it answers; raise
    `error` with the end of its log when it cannot start, dies first or does not answer in time."""
    try:
        if after_death:
            supervisor.restart(process)
        else:
            supervisor.start(process)
        supervisor.wait_ready([process], timeout)
    except (StartError, NotReady) as exc:
        raise error(str(exc)) from None


def prepare_secrets(env: dict[str, str]) -> None:
    """The explicit step before anything imports the settings, as ./run.sh runs it: the secrets .env leaves out,
    into env's CFPS_VAR_DIR (or the repo's var/)."""
    cmd = [sys.executable, "-m", "portal.config.env", "prepare"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {result.returncode}\n{result.stdout}{result.stderr}")


class PortalProcess:
    """The portal served by gunicorn on 127.0.0.1:<free port>, with its own throwaway SQLite database.

    with PortalProcess(tmp_path) as portal:
        code = portal.manage("create_invite", "--max-uses", "1").stdout.splitlines()[-1]
        page.goto(portal.url("/accounts/signup/"))
    """

    START_TIMEOUT = 30.0

    def __init__(
        self,
        tmp_path: Path,
        extra_env: dict[str, str] | None = None,
        public_port: int | None = None,
        workers: int | None = 1,
        supervisor: Supervisor | None = None,
        worker: bool = False,
    ):
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.supervisor = supervisor or new_supervisor()
        self.port = free_port()
        # Alone, the portal is what browsers reach; in a Stack, the proxy on public_port is.
        self.public_port = public_port or self.port
        # One process by default, as in the embedded default; None: gunicorn.conf.py's own (one per core, at least 2, in prod).
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp_path / "gunicorn.log"
        self.process: Process | None = None  # the supervisor's, from the first start on
        self._up = False

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
                # All runtime state (generated secrets, static files, hub database, user homes) stays here.
                "CFPS_VAR_DIR": str(self.tmp_path.resolve() / "var"),
                "PORT": str(self.public_port),
                "PORTAL_PORT": str(self.port),
                "DEBUG": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        self.env = env
        # On top of env for the gunicorn process only, not its commands nor a Stack's hub: e.g. a portal
        # without the Docker access the hub has, as the production units split them.
        self.server_env: dict[str, str] = {}
        self._prepared = False
        # The course worker (manage.py course_worker), as run.sh starts it next to the portal; only for the tests
        # that hand out or collect, or that ask /healthz or `status` about it.
        self.worker: Process | None = None
        if worker:
            command = [sys.executable, "manage.py", "course_worker", "--interval", "0.5"]
            self.worker = Process("the course worker", command, cwd=REPO, log=self.tmp_path / "worker.log")

    # --- commands ---------------------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` against this portal's database; raises with the output on failure. The first
        one is preceded by the secrets step, as ./run.sh (and --prepare) run it before any manage.py."""
        if not self._prepared:
            prepare_secrets(self.env)
            self._prepared = True
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
        cmd += ["-b", f"127.0.0.1:{self.port}"]
        if self.workers is not None:
            cmd += ["-w", str(self.workers), "--threads", "4"]
        # gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default, one path shared by every
        # instance on the machine; a test server must not take it over from a running ./run.sh.
        cmd += ["--no-control-socket", "portal.wsgi"]
        return cmd

    @property
    def proc(self) -> subprocess.Popen | None:
        """gunicorn's master process while the portal is started, else None."""
        return self.process.proc if self._up else None

    def start(self) -> PortalProcess:
        if self._up:
            raise PortalError("portal already started")
        self.manage("migrate", "--noinput")
        # Translations: *.mo files are git-ignored build output, so compile them like a deploy would.
        # --ignore keeps Django from walking into the virtualenv's own locale folders.
        self.manage("compilemessages", "--ignore=.venv", "--ignore=node_modules", "--ignore=var")
        # STATIC_ROOT is $CFPS_VAR_DIR/static, as ./run.sh collects into var/static.
        self.manage("collectstatic", "--noinput", "-v", "0")
        if self.process is None:
            self.process = Process("the portal (gunicorn)", self.gunicorn_command(), cwd=REPO, log=self.log_path)
        self.process.env = {**self.env, **self.server_env}
        # Alone, or before its hub and proxy run, the portal is asked directly (a Stack then asks through them).
        self.process.ready_url, self.process.ready_host = self.url("/"), None
        self._up = True
        try:
            start_and_wait(self.supervisor, self.process, self.START_TIMEOUT, PortalError)
            if self.worker is not None:
                self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, after_death: bool = False) -> None:
        """Start the course worker (again, after a kill) and wait until /healthz sees its heartbeat."""
        import time

        import httpx

        self.worker.env = self.env
        if after_death:
            self.supervisor.restart(self.worker)
        else:
            self.supervisor.start(self.worker)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url("/healthz"), trust_env=False, timeout=5).json().get("worker") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if not self.worker.running():
                break
            time.sleep(0.25)
        raise PortalError(f"the course worker did not start:\n{_tail(self.tmp_path / 'worker.log')}")

    def url(self, path: str = "/") -> str:
        return self.base_url + "/" + path.lstrip("/")

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        """gunicorn alone (in a Stack, the hub keeps running), as the supervisor stops it, with its workers."""
        if self._up:
            self._up = False
            self.supervisor.stop([p for p in (self.worker, self.process) if p is not None and p.proc is not None])

    def __enter__(self) -> PortalProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class HubError(RuntimeError):
    pass


def hub_command() -> list[str]:
    """JupyterHub as run.sh and the systemd unit start it (hubconfig/hub.py says why not `jupyterhub`)."""
    return [sys.executable, str(REPO / "hubconfig" / "hub.py"), "-f", str(REPO / "hubconfig" / "jupyterhub_config.py")]


def secret_file(env: dict[str, str], name: str) -> str:
    """A secret the secrets step (prepare_secrets) generated into var/secrets/."""
    return (Path(env["CFPS_VAR_DIR"]) / "secrets" / name).read_text().strip()


# The embedded default's two origins share the proxy's port but not the host name (portal/config/topology.py).
PORTAL_HOST = "127.0.0.1"
HUB_HOST = "localhost"
HUB_PATH = "/jupyter/"
USER_PATH = "/jupyter/user/"


def user_subdomains(env: dict[str, str]) -> bool:
    """Whether a stack with this environment gives each student a host of their own (the default)."""
    return env.get("USER_SUBDOMAINS", "true").strip().lower() not in {"0", "false", "no", "off"}


def user_origin(hub_base_url: str, name: str) -> str:
    """`name`'s own origin next to the hub's: `<name>.<hub host>` by JupyterHub's own rule, same scheme and port."""
    from jupyterhub.utils import subdomain_hook_idna

    scheme, rest = hub_base_url.split("://", 1)
    host, colon, port = rest.partition(":")
    return f"{scheme}://{subdomain_hook_idna(name, host, 'user')}{colon}{port}"


def public_url(site, path: str) -> str:
    """The public URL of `path` as links give it: a student's server (/jupyter/user/<name>/...) on the student's
    own host when `site.user_subdomains`, the rest of /jupyter/ on the hub's origin, anything else on the
    portal's. `site` has base_url, hub_base_url and user_subdomains (a Stack, or one behind Nginx)."""
    path = "/" + path.lstrip("/")
    if path.startswith(USER_PATH) and site.user_subdomains:
        name = path[len(USER_PATH) :].split("/", 1)[0]
        if name:
            return user_origin(site.hub_base_url, name) + path
    return (site.hub_base_url if path.startswith(HUB_PATH) else site.base_url) + path


class Stack:
    """The whole system as ./run.sh runs it: gunicorn (portal), JupyterHub, its proxy and idle culler,
    all real processes on free loopback ports, with state in tmp_path, under one supervisor (run.sh's).

    Two origins, as in production: the portal at http://127.0.0.1:<port>/, the hub at
    http://localhost:<port>/jupyter/, and each student's server at http://<name>.localhost:<port>/jupyter/user/<name>/
    (the hub's origin too with USER_SUBDOMAINS=false). `url(path)` picks the origin from the path, as links do.

    with Stack(tmp_path, proxy="node") as stack:
        stack.url("/jupyter/")  # http://localhost:<port>/jupyter/, through the proxy, like a browser
    """

    START_TIMEOUT = 90.0

    def __init__(
        self,
        tmp_path: Path,
        proxy: str = "python",
        extra_env: dict[str, str] | None = None,
        workers: int | None = 1,
        worker: bool = False,
        hub_args: tuple[str, ...] = (),
    ):
        """`hub_args`: more of JupyterHub's own command-line options, which win over its config file."""
        self.tmp_path = Path(tmp_path)
        self.public_port = free_port()
        hub_env = {
            "PROXY": proxy,
            "HUB_PORT": str(free_port()),
            "PROXY_API_PORT": str(free_port()),
            "SPAWNER": "local",
            # Off unless a test is about it (the shipped default is on): most tests log students in and then
            # look at a server they start themselves, or at none (tests/browser/test_server_state_browser.py
            # turns it on).
            "START_SERVER_AT_LOGIN": "false",
            **(extra_env or {}),
        }
        self.supervisor = new_supervisor()
        self.portal = PortalProcess(
            self.tmp_path, extra_env=hub_env, public_port=self.public_port, workers=workers, supervisor=self.supervisor,
            worker=worker,
        )  # fmt: skip
        self.env = self.portal.env
        self.base_url = f"http://{PORTAL_HOST}:{self.public_port}"  # the portal's origin
        self.hub_base_url = f"http://{HUB_HOST}:{self.public_port}"  # the hub's origin
        self.user_subdomains = user_subdomains(self.env)
        self.hub_dir = Path(self.env["CFPS_VAR_DIR"]) / "hub"
        self.hub_log = self.tmp_path / "hub.log"
        # As run.sh gives it to its supervisor: asked through the proxy as its own host name; a dead hub's users'
        # servers keep running when it is started again.
        self.hub = Process(
            "JupyterHub", [*hub_command(), *hub_args], cwd=self.hub_dir, log=self.hub_log, env=self.env,
            ready_url=f"http://127.0.0.1:{self.public_port}{HUB_PATH}hub/api",
            ready_host=f"{HUB_HOST}:{self.public_port}", keep_running=["jupyterhub-singleuser"],
        )  # fmt: skip

    @property
    def hub_proc(self) -> subprocess.Popen | None:
        """The hub's process (the latest one), once started."""
        return self.hub.proc

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.portal.manage(*args, timeout=timeout)

    def url(self, path: str = "/") -> str:
        """The public URL of `path`: a student's server on its own host, the hub's origin for the rest of
        /jupyter/, else the portal's (`public_url`)."""
        return public_url(self, path)

    def user_url(self, name: str, path: str = "") -> str:
        """`path` of `name`'s server, where the hub serves it."""
        return self.url(f"{USER_PATH}{name}/{path.lstrip('/')}")

    def portal_url(self, path: str = "/") -> str:
        """`path` on the portal's origin, whatever it is (e.g. to show the portal refuses hub paths)."""
        return self.base_url + "/" + path.lstrip("/")

    def hub_url(self, path: str = "/") -> str:
        """`path` on the hub's origin, whatever it is."""
        return self.hub_base_url + "/" + path.lstrip("/")

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HUB_PORT']}/jupyter/hub/api"

    def hub_admin_token(self) -> str:
        """The portal's own hub-service token (from the environment in prod, else generated into var/secrets)."""
        return self.env.get("HUB_API_TOKEN") or secret_file(self.env, "HUB_API_TOKEN")

    def start(self) -> Stack:
        self.portal.start()
        self.manage("bootstrap")  # registers the hub's OAuth client, as ./run.sh does
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        try:
            start_and_wait(self.supervisor, self.hub, self.START_TIMEOUT, HubError)
            # Both through the proxy, each on its origin, as run.sh waits for them.
            portal = self.portal.process
            portal.ready_url, portal.ready_host = self.url("/"), None
            self.supervisor.wait_ready([portal, self.hub], self.START_TIMEOUT)
        except NotReady as exc:
            self.stop()
            raise HubError(str(exc)) from None
        except BaseException:
            self.stop()
            raise
        return self

    def restart_hub(self) -> None:
        """Start a hub that died (was killed) again, as run.sh's supervisor does, at once: what it had started is
        stopped first (its proxy, the idle culler) except the users' servers; then wait until it answers."""
        start_and_wait(self.supervisor, self.hub, self.START_TIMEOUT, HubError, after_death=True)

    def log_tail(self, lines: int = 80) -> str:
        return f"--- hub ---\n{_tail(self.hub_log, lines)}\n--- portal ---\n{self.portal.log_tail(lines)}"

    def stop(self) -> None:
        """As Ctrl-C stops run.sh: the hub (it stops its proxy, services and users' servers), then the portal,
        then whatever they left running (a hub that gave up, or was killed, leaves its servers behind)."""
        self.supervisor.stop()
        self.portal.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
