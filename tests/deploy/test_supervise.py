"""supervise/supervisor.py, run as ./run.sh runs it (`python -m supervise`), over two tiny real HTTP servers:
"web" (the portal's place) and "hub", which starts a child of its own in a session of its own that ignores
SIGTERM, as the hub starts its proxy and the users' servers. A restarted hub finds its child again (as
JupyterHub finds its users' servers in its database) instead of starting another one.

What is checked is what an operator sees: the exit code, the messages, the logs, and the process table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from supervise import alive, descendants, start_time, still_running
from tests.live import REPO, free_port

SERVER = r"""
import http.server, os, signal, subprocess, sys, time

name, port, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def note(text):  # one line per event, both servers in one file: it shows the order
    with open(os.path.join(folder, "events"), "a") as fh:
        fh.write(f"{name} {os.getpid()} {text}\n")


def on_term(signum, frame):
    note("got SIGTERM")
    time.sleep(0.5)  # a slow stop: the next one must wait for it
    note("exits")
    os._exit(0)


signal.signal(signal.SIGTERM, signal.SIG_IGN if "--deaf" in sys.argv else on_term)
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)  # "


def spawn(what):  # in a session of its own, deaf to SIGTERM: the worst case
    secret = ["--api-token", "SECRET-" + what.split()[-1]]  # as the hub hands its proxy a secret
    child = subprocess.Popen([sys.executable, "-c", STUBBORN + what, *secret], start_new_session=True)
    open(os.path.join(folder, what.split()[-1] + ".pid"), "w").write(str(child.pid))
    note(f"starts {what} {child.pid}")


if "--children" in sys.argv:
    try:  # a user's server: a restarted hub finds it again (as JupyterHub does from its database)
        pid = int(open(os.path.join(folder, "server.pid")).read())
        os.kill(pid, 0)
        note(f"finds server {pid}")
    except (OSError, ValueError):
        spawn("a user's server")
    spawn("the hub's service")  # like the idle culler: a new one per hub
if "--die" in sys.argv:
    sys.exit("cannot start: the configuration is wrong")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {os.getpid()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print(f"{name}: {format % args}", file=sys.stderr, flush=True)


print(f"{name} {os.getpid()} listening on {port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Run:
    """One supervisor process over "web" and "hub", with its output and the servers' state in `folder`."""

    def __init__(
        self, folder: Path, *options: str, hub_args=("--children",), hub_ready: str | None = None, sigint_ignored=False
    ):
        self.folder = folder
        (folder / "server.py").write_text(SERVER)
        self.ports = {"web": free_port(), "hub": free_port()}
        blocks = []
        for name, extra in (("web", ()), ("hub", hub_args)):
            keep = ["--keep-running", "# a user's server"] if name == "hub" else []
            blocks += ["--start", name, "--log", str(folder / f"{name}.log"), "--cwd", str(folder), *keep,
                       "--ready", (name == "hub" and hub_ready) or self.url(name), "--",
                       sys.executable, str(folder / "server.py"), name, str(self.ports[name]), str(folder), *extra,
                       ";"]  # fmt: skip
        command = [sys.executable, "-m", "supervise", "--label", "test", "--stop-timeout", "2",
                   "--banner", "  ALL READY", *options, *blocks]  # fmt: skip
        self.out, self.err = open(folder / "stdout", "wb"), open(folder / "stderr", "wb")  # noqa: SIM115
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=ignore)  # fmt: skip
        self.seen: dict[int, str] = {}  # every process below the supervisor, ever

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/"

    def answer(self, name: str) -> str | None:
        try:
            with _OPENER.open(self.url(name), timeout=2) as response:
                return response.read().decode()
        except OSError:
            return None

    def stdout(self) -> str:
        return (self.folder / "stdout").read_text()

    def stderr(self) -> str:
        return (self.folder / "stderr").read_text()

    def events(self) -> list[str]:
        path = self.folder / "events"
        lines = path.read_text().splitlines() if path.exists() else []
        return [f"{name} {text}" for name, _pid, text in (line.split(" ", 2) for line in lines)]

    def look(self) -> None:
        self.seen.update(descendants(self.proc.pid))

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.look()
            if value := predicate():
                return value
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout:.0f} s\n--- stdout ---\n{self.stdout()}\n"
                             f"--- stderr ---\n{self.stderr()}")  # fmt: skip

    def ready(self) -> Run:
        self.wait_for(lambda: "ALL READY" in self.stdout(), 30, "the banner")
        return self

    def hub_pid(self) -> int:
        return int(self.answer("hub").split()[1])

    def pid_of(self, child: str) -> int:
        return int((self.folder / f"{child}.pid").read_text())

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.out.close()
            self.err.close()

    def left_running(self) -> list[int]:
        return still_running(self.seen.items())

    def close(self) -> None:
        """Whatever a failed test left: the supervisor and everything it started."""
        self.look()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.left_running():
            os.kill(pid, signal.SIGKILL)
        self.out.close()
        self.err.close()


@pytest.fixture
def run(tmp_path):
    runs = []

    def start(*options: str, **kwargs) -> Run:
        runs.append(Run(tmp_path, *options, **kwargs))
        return runs[-1]

    yield start
    for each in runs:
        each.close()


def kill_hub_and_wait_for_a_new_one(run: Run) -> int:
    old = run.hub_pid()
    os.kill(old, signal.SIGKILL)
    return run.wait_for(lambda: (a := run.answer("hub")) and int(a.split()[1]) != old and int(a.split()[1]), 30,
                        "a new hub answering")  # fmt: skip


def test_a_killed_hub_is_started_again_finds_its_users_server_and_answers(run):
    run = run().ready()
    server, server_started, service = run.pid_of("server"), start_time(run.pid_of("server")), run.pid_of("service")
    web = run.answer("web")

    new_hub = kill_hub_and_wait_for_a_new_one(run)

    run.wait_for(lambda: "hub answers again" in run.stdout(), 10, "the supervisor saying the hub is back")
    err = run.stderr()
    assert "hub stopped by itself (killed by SIGKILL); starting it again in 1 s (restart 1 of at most 5" in err
    assert alive(server) and start_time(server) == server_started, "the user's server died with the hub"
    # Orphaned, it belongs to the supervisor (a subreaper), not to init: still found as a descendant.
    assert Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(run.proc.pid)
    assert f"hub {new_hub} finds server {server}" in (run.folder / "events").read_text()
    assert f"1 process(es) hub started keep running: {server}" in run.stdout()
    # The dead hub's service (deaf to TERM) is gone, not running twice beside the new hub's.
    assert f"stopping what hub left running:\n  {service} " in err and not alive(service)
    assert alive(run.pid_of("service"))
    assert run.answer("web") == web, "the web server was restarted too"
    hub_log = (run.folder / "hub.log").read_text()
    assert "=== " in hub_log and ": test starts hub again (restart 1) ===" in hub_log


def test_ctrl_c_stops_the_hub_then_the_portal_then_what_they_left_and_exits_0(run):
    run = run().ready()
    run.look()
    children = [run.pid_of("server"), run.pid_of("service")]

    os.kill(run.proc.pid, signal.SIGINT)

    assert run.wait_exit() == 0, run.stderr()
    assert run.events()[-4:] == ["hub got SIGTERM", "hub exits", "web got SIGTERM", "web exits"]
    assert "Stopping hub, then web (up to 2 s each; Ctrl-C again to kill at once)" in run.stdout()
    # The hub's children ignore TERM and outlived the hub: found, named, and killed.
    left = run.stderr().split("stopping what was left running:\n", 1)[1].splitlines()
    assert sorted(int(line.split()[0]) for line in left) == sorted(children), run.stderr()
    assert f"{sys.executable} -c import signal" in left[0] and "SECRET-" not in run.stderr()
    assert set(children) <= set(run.seen) and not run.left_running(), "processes outlived the supervisor"
    assert not any(alive(pid) for pid in children)


def test_a_killed_portal_is_started_again_too(run):
    run = run().ready()
    old, hub = int(run.answer("web").split()[1]), run.answer("hub")

    os.kill(old, signal.SIGKILL)

    run.wait_for(lambda: (a := run.answer("web")) and int(a.split()[1]) != old, 30, "a new web server answering")
    assert "web stopped by itself (killed by SIGKILL); starting it again in 1 s" in run.stderr()
    assert run.answer("hub") == hub, "the hub was restarted too"


def test_ctrl_c_twice_kills_at_once_what_does_not_stop(run):
    run = run("--stop-timeout", "60", hub_args=("--deaf",)).ready()
    hub = run.hub_pid()
    os.kill(run.proc.pid, signal.SIGINT)
    run.wait_for(lambda: "Ctrl-C again to kill at once" in run.stdout(), 10, "the supervisor stopping")
    began = time.monotonic()

    os.kill(run.proc.pid, signal.SIGINT)

    assert run.wait_exit(timeout=20) == 0, run.stderr()
    assert time.monotonic() - began < 10, "the second Ctrl-C did not cut the wait short"
    assert f"killing process {hub} (Ctrl-C twice) and what it started" in run.stderr()
    assert not alive(hub) and not run.left_running()


def test_a_hub_that_keeps_dying_makes_the_supervisor_give_up_with_its_log(run):
    run = run("--restart-delay", "0.1").ready()
    for _ in range(5):
        kill_hub_and_wait_for_a_new_one(run)
    os.kill(run.hub_pid(), signal.SIGKILL)  # the 6th time within 5 minutes

    code = run.wait_exit()

    assert code == 128 + signal.SIGKILL, run.stderr()
    err = run.stderr()
    assert "restart 5 of at most 5 within 5 min" in err
    assert "error: hub stopped by itself again (killed by SIGKILL): 6 times within 5 min; test gives up" in err
    # The end of the log since the last start only: the last hub's first line, no earlier hub's.
    tail = err.split("Last 30 lines of ", 1)[1]
    assert tail.startswith(f"{run.folder / 'hub.log'} (hub):")
    assert tail.count(" listening on ") == 1
    assert run.answer("web") is None and not run.left_running()


def test_sigint_works_when_it_was_ignored_at_start_and_the_servers_get_it_at_its_default(run):
    """`./run.sh &` from a script starts it with SIGINT ignored; the hub stops its services with SIGINT."""
    run = run(sigint_ignored=True).ready()
    status = Path(f"/proc/{run.hub_pid()}/status").read_text()
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGINT - 1)), "the hub inherited an ignored SIGINT"

    os.kill(run.proc.pid, signal.SIGINT)

    assert run.wait_exit() == 0, run.stderr()
    assert not run.left_running()


def test_a_process_that_dies_at_start_up_stops_the_other_and_shows_its_log(run):
    run = run(hub_args=("--die",))

    assert run.wait_exit() == 1
    err = run.stderr()
    assert "error: hub stopped by itself (exit 1)" in err
    assert "cannot start: the configuration is wrong" in err.split("Last 30 lines of", 1)[1]
    assert "ALL READY" not in run.stdout() and "starting it again" not in err
    assert run.answer("web") is None and not run.left_running()


def test_nothing_answering_in_time_stops_everything_and_exits_1(run):
    nowhere = f"http://127.0.0.1:{free_port()}/"
    run = run("--ready-timeout", "2", hub_ready=nowhere)

    assert run.wait_exit() == 1
    err = run.stderr()
    assert f"error: not everything answered 200 within 2 s: hub: {nowhere}: no answer (Connection refused)" in err
    assert "Last 30 lines of" in err and "hub: " in err and "ALL READY" not in run.stdout()
    assert not run.left_running()


def test_as_a_library_beside_other_children_it_stops_and_collects_only_its_own(tmp_path):
    """As tests/live.py uses it, in a process with children of its own (pytest's browsers, other stacks): what
    its process started is found and stopped, even deaf to TERM and orphaned; the other children keep running,
    and one that ended keeps its exit code for its owner."""
    from supervise import Process, Supervisor

    (tmp_path / "server.py").write_text(SERVER)
    port = free_port()
    command = [sys.executable, str(tmp_path / "server.py"), "hub", str(port), str(tmp_path), "--children"]
    hub = Process("hub", command, cwd=tmp_path, log=tmp_path / "hub.log", ready_url=f"http://127.0.0.1:{port}/",
                  env={**os.environ, "ONLY_THE_HUB": "1"})  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ended = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor(label="test", stop_timeout=2)
    try:
        supervisor.start(hub)
        assert supervisor.wait_ready([hub], 30), "cut short"
        assert b"ONLY_THE_HUB=1" in Path(f"/proc/{hub.pid}/environ").read_bytes()
        children = [int((tmp_path / f"{name}.pid").read_text()) for name in ("server", "service")]

        supervisor.stop()

        assert not alive(hub.pid) and not any(alive(pid) for pid in children), "the hub's children outlived it"
        assert other.poll() is None, "the supervisor stopped a process it had not started"
        assert ended.wait(timeout=10) == 3, "the supervisor collected a child that is not its own"
        assert ": test starts hub ===" in (tmp_path / "hub.log").read_text()
    finally:
        other.kill()
        other.wait()
        supervisor.stop()
