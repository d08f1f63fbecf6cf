"""The process supervisor of ./run.sh: starts long-running processes, waits until they answer, restarts one
that dies on its own, and on Ctrl-C stops them all in order, with everything they started.

    python -m supervise [options] \\
        --start NAME [--log FILE] [--cwd DIR] [--ready URL [--host HOST]] [--keep-running TEXT]... \\
            -- COMMAND ARGS... \\; \\
        [--start ...] [--when-ready COMMAND ARGS... \\;]

Under systemd each process is a unit and systemd does all of this (`Restart=on-failure`, `KillMode=mixed`);
this module does it for ./run.sh, which has no systemd. Django-free and stdlib-only (it runs before anything
else and must not import the project), Linux-only (/proc, prctl).

Why not supervisord or circus (both weighed): neither is a library a test can drive in its own process, and
the tests need exactly that (below). supervisord kills a program's process group at most, while the hub's
proxy, culler and local users' servers start sessions of their own, so a dead hub's children would outlive it
or run twice after its restart; it restarts without a growing back-off, has no notion of "stop in reverse
order of start, then everything they left", and would add a daemon, an XML-RPC socket and a config file to
a one-command start. circus has the hooks but its last release is from early 2025, it pulls in ZeroMQ, and it
shares the process-tree gap. What is left here (about 700 lines with the command line) is the part those do
not do.

It is also a small library, and the one the tests run: tests/live.py starts its portals and hubs with a
`Supervisor` in pytest's own process (`start`, `wait_ready`, `restart`, `stop`), so every live test starts,
waits for and stops them with run.sh's code, and its logs carry the same marker lines. In-process rather than
one `python -m supervise` per test stack, because tests need what the command line does not offer: the
pid of one process (gunicorn's workers are counted below it), one process stopped or killed alone and then
started again by hand (the supervisor's run loop would restart it on its own), an environment for one
process only (a portal without the hub's Docker access). Used so, the supervisor shares its process with
other children (pytest's browsers, other stacks, the fault tests' databases): it is no subreaper, collects
only its own children, and tracks and stops only what is found below its processes, never everything below
os.getpid() as the command line does.

The rules:
- Each process runs in a session of its own with its output appended to its log after a marker line
  (`=== <time>: run.sh starts <name> ===`), so Ctrl-C at the terminal reaches only the supervisor, which then
  stops the processes in REVERSE order of start: the hub first, so it stops its proxy, its services (the idle
  culler) and the users' servers itself, then the portal. TERM, up to --stop-timeout seconds each (a second
  Ctrl-C cuts this short), then KILL with what it started.
- Nothing is left behind: the supervisor is a child subreaper (prctl), so whatever a dead process started
  (the hub's proxy, users' servers, kernels) is re-parented to it instead of to init and is still found as
  its descendant; and (pid, start time) of every descendant is remembered as it runs, since a pid alone may
  name another process later. After the processes have stopped, every remembered one still running is
  stopped too. Docker containers are not descendants (dockerd runs them) and are left to the hub.
- Start-up: every --ready URL must answer 200 (asked for as --host, since the proxy routes by host name)
  within --ready-timeout seconds, or the supervisor shows the logs, stops everything and exits 1. A process
  that dies before then is a configuration error: its log is shown and the supervisor exits with its code.
  Then the --when-ready commands run one after the other and the banner is printed.
- Afterwards a process that dies on its own is started again after a back-off (--restart-delay, doubled per
  restart within --restart-window). What it had started is stopped first (as systemd empties a unit's cgroup
  before a restart: the hub's old proxy and idle culler would otherwise run twice), except what matches
  --keep-running, with its own descendants: the users' servers and kernels, which a restarted JupyterHub finds
  again from its database. Beyond --max-restarts within --restart-window the supervisor gives up: it shows
  the end of the log, stops everything and exits non-zero.
- Exit codes: 0 after a signal (INT, TERM, HUP), 1 when start-up times out or the supervisor gives up on a
  process that exited 0, else the dead process's code (128 + N for signal N, as shells report it).
- SIGINT is handled even when it was ignored at start (`./run.sh &`, nohup), and the processes start with it
  at its default (the hub stops its services with SIGINT first). SIGHUP is handled unless it was ignored at
  start (nohup means: keep running when the terminal goes).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICK = 0.5  # seconds between looks at the processes
LOG_TAIL_LINES = 30


# --- the process table (/proc) ----------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses): state,
    ppid, ...; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot): with the pid it names one process for good."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def alive(pid: int) -> bool:
    """True while the process runs; a zombie (dead, not yet reaped by its parent) does not count."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in {"Z", "X"}


def parents() -> dict[int, int]:
    """pid -> parent pid of every process, from one look at /proc."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and len(fields) > 1 and fields[1].isdigit():
            found[int(entry)] = int(fields[1])
    return found


def descendants(root: int, table: dict[int, int] | None = None) -> list[tuple[int, str]]:
    """(pid, start time) of every process below `root` (children first, then theirs), from one look at /proc
    (or from `table`, a parents() taken a moment ago)."""
    table = parents() if table is None else table
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in table.items() if parent in frontier}
        found += [(pid, start) for pid in sorted(frontier) if (start := start_time(pid))]
    return found


def still_running(known: Iterable[tuple[int, str]]) -> list[int]:
    """The pids of `known` (pid, start time) pairs that still name the same, live process."""
    return [pid for pid, start in known if alive(pid) and start_time(pid) == start]


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def short_command(pid: int) -> str:
    """The program and its first arguments, up to the first option: enough to name a process in a message,
    without the option values that follow (the hub gives its proxy a secret header on the command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    shown = []
    for word in words[:3]:
        if word.startswith("--") or not word:
            break
        shown.append(word if len(word) <= 60 else word[:57] + "...")
    return " ".join(shown) or "?"


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process, not to init (Linux 3.4+: PR_SET_CHILD_SUBREAPER)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap(own: dict[int, subprocess.Popen], everyone: bool = True) -> None:
    """Collect every child that has ended: Popen's own through Popen (it keeps the exit code), re-parented
    orphans directly, so that a zombie does not look alive to the hub's `kill(pid, 0)`. Not `everyone`: only
    `own` (the other children of this process are someone else's to collect)."""
    if not everyone:
        for pid, proc in list(own.items()):
            if proc.poll() is not None:
                del own[pid]
        return
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None:
            return
        if info.si_pid in own:
            own.pop(info.si_pid).poll()
        else:
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass


# --- output ---------------------------------------------------------------------------------------------------
def _write(stream, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except OSError:  # the terminal may be gone (SIGHUP)
        pass


def say(message: str) -> None:
    _write(sys.stdout, f"==> {message}\n")


def warn(message: str) -> None:
    _write(sys.stderr, f"warning: {message}\n")


def error(message: str) -> None:
    _write(sys.stderr, f"\nerror: {message}\n")


def show_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def exit_status(code: int) -> int:
    """The supervisor's own exit code for a process that ended with `code` (never 0: it is a failure)."""
    return 128 - code if code < 0 else (code or 1)


def http_status(url: str, host: str | None, timeout: float = 3) -> str:
    """'200', 'HTTP <status>' for another, or why nothing answered. No proxy from the environment, no redirects."""
    parts = urllib.parse.urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Host": host} if host else {})
        status = conn.getresponse().status
        return "200" if status == 200 else f"HTTP {status}"
    except OSError as exc:
        return f"no answer ({exc.strerror or exc.__class__.__name__})"
    finally:
        conn.close()


# --- the supervisor -------------------------------------------------------------------------------------------
@dataclass(eq=False)  # one process is itself only
class Process:
    name: str
    command: list[str]
    cwd: Path = field(default_factory=Path.cwd)
    log: Path | None = None
    ready_url: str | None = None
    ready_host: str | None = None
    keep_running: list[str] = field(default_factory=list)  # command-line parts of what outlives a death
    env: dict[str, str] | None = None  # the whole environment of the process; None: the supervisor's own

    tree: dict[int, str] = field(default_factory=dict)  # pid -> start time of what it started, dead or alive
    doomed: list[tuple[int, str]] = field(default_factory=list)  # its leftovers, TERMed, KILLed at restart

    proc: subprocess.Popen | None = None
    restarts: collections.deque = field(default_factory=collections.deque)  # monotonic times
    restart_at: float | None = None  # when a dead one starts again
    answering: bool = False
    ready_deadline: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and alive(self.proc.pid)

    def answers(self) -> bool:
        return not self.ready_url or http_status(self.ready_url, self.ready_host) == "200"

    def log_report(self) -> str:
        """The end of the log since the latest start, under a line that names it (empty without a log)."""
        if self.log is None:
            return ""
        return f"\nLast {LOG_TAIL_LINES} lines of {show_path(self.log)} ({self.name}):\n{self.log_since_start()}\n"

    def log_since_start(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines this supervisor's latest start of the process wrote to its log."""
        if self.log is None:
            return ""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        marks = [i for i, line in enumerate(text) if line.startswith("=== ") and " starts " in line]
        return "\n".join(text[marks[-1] if marks else 0 :][-lines:])


class StartError(Exception):
    pass


class NotReady(Exception):
    """A process died before it answered, or time ran out; `code` is the supervisor's exit code for it, and
    str() adds the end of the logs of `shown` to the reason."""

    def __init__(self, reason: str, code: int, shown: list[Process]):
        super().__init__(reason)
        self.reason, self.code, self.shown = reason, code, shown

    def __str__(self) -> str:
        return self.reason + "".join(process.log_report() for process in self.shown)


class Supervisor:
    def __init__(
        self,
        processes: list[Process] | None = None,
        *,
        label: str = "supervise",
        ready_timeout: float = 60,
        stop_timeout: float = 20,
        max_restarts: int = 5,
        restart_window: float = 300,
        restart_delay: float = 1,
        when_ready: list[list[str]] | None = None,
        banner: str | None = None,
    ):
        self.processes = processes if processes is not None else []  # in order of (first) start
        self.label = label
        self.ready_timeout, self.stop_timeout = ready_timeout, stop_timeout
        self.max_restarts, self.restart_window, self.restart_delay = max_restarts, restart_window, restart_delay
        self.when_ready = when_ready or []
        self.banner = banner
        self.children: dict[int, subprocess.Popen] = {}  # every Popen of ours not yet reaped
        self.known: dict[int, str] = {}  # pid -> start time of every descendant seen
        # True in the command line (run()), where every process below this one is the processes' (orphans
        # re-parented to the subreaper too); False in a process with children of its own (pytest), which
        # then collects only its own children and tracks only what is found below its processes.
        self.owns_everything_below = False
        self.signalled: int | None = None
        self.stopping = False
        self.force = False

    # --- signals ---
    def _on_signal(self, signum, frame) -> None:
        if self.stopping:
            self.force = True
        elif self.signalled is None:
            self.signalled = signum

    def install_signals(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
            signal.signal(signal.SIGHUP, self._on_signal)

    # --- processes ---
    def start(self, process: Process, again: int = 0) -> None:
        """Start `process` (joining the list if new) in a session of its own, its output appended to its log
        after a marker line; StartError when it cannot be started at all."""
        if process not in self.processes:
            self.processes.append(process)
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        what = f"{process.name} again (restart {again})" if again else process.name
        log = open(process.log, "ab") if process.log else None  # noqa: SIM115 - the child holds it
        try:
            if log:
                log.write(f"\n=== {when}: {self.label} starts {what} ===\n".encode())
                log.flush()
            process.proc = subprocess.Popen(
                process.command, cwd=process.cwd, env=process.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log if log else None, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:  # no such program or folder: a message, not a traceback
            raise StartError(f"cannot start {process.name} ({' '.join(process.command)}): {exc}") from None
        finally:
            if log:
                log.close()
        self.children[process.proc.pid] = process.proc
        process.restart_at, process.answering = None, False
        process.ready_deadline = time.monotonic() + self.ready_timeout

    def tick(self, seconds: float = TICK) -> None:
        """Wait a little (a signal cuts it short), collect ended children, remember what runs below us."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.signalled is None and not self.force:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        self.reap()
        self.remember()

    def reap(self) -> None:
        reap(self.children, everyone=self.owns_everything_below)

    def remember(self) -> None:
        """Note (pid, start time) of what runs below the processes (below this one, in the command line)."""
        table = parents()
        if self.owns_everything_below:
            self.known.update(descendants(os.getpid(), table))
        for process in self.processes:
            if process.running():
                found = descendants(process.pid, table)
                process.tree.update(found)
                self.known.update(found)
        for tree in [self.known] + [process.tree for process in self.processes]:
            for pid in [pid for pid, start in tree.items() if start_time(pid) != start]:
                del tree[pid]  # ended: forget it before the pid names another process

    def stop_leftovers(self, process: Process) -> None:
        """What a process that died on its own had started is stopped before it starts again (its proxy, its
        services), except what matches --keep-running and what that started (the users' servers and their
        kernels, which a restarted JupyterHub finds again): TERM now, KILL at the restart."""
        left = still_running(process.tree.items())
        kept: set[int] = set()
        for pid in left:
            if any(part in command_line(pid) for part in process.keep_running):
                kept |= {pid, *(child for child, _ in descendants(pid))}
        doomed = [pid for pid in left if pid not in kept]
        if doomed:
            warn(f"stopping what {process.name} left running:")
            for pid in doomed:
                _write(sys.stderr, f"  {pid} {short_command(pid)}\n")
            signal_all(doomed, signal.SIGTERM)
        if kept:
            say(f"{len(kept)} process(es) {process.name} started keep running: {' '.join(map(str, sorted(kept)))}")
        process.doomed = [(pid, process.tree[pid]) for pid in doomed]
        process.tree = {pid: start for pid, start in process.tree.items() if pid in kept}

    def start_again(self, process: Process) -> None:
        """After stop_leftovers: KILL what of that is still running, then start the process again."""
        signal_all(still_running(process.doomed), signal.SIGKILL)
        process.doomed = []
        self.start(process, again=len(process.restarts))

    def restart(self, process: Process) -> None:
        """Start again a process that died, as the run loop does but at once (no back-off, no limit): what it
        had started is stopped first (TERM, up to --stop-timeout, then KILL), except what --keep-running
        keeps. Wait for it with wait_ready()."""
        if process.running():
            raise StartError(f"{process.name} is still running (process {process.pid})")
        self.exit_code(process)
        self.remember()
        process.restarts.append(time.monotonic())
        self.stop_leftovers(process)
        self._wait_gone([pid for pid, _ in process.doomed], self.stop_timeout)
        self.start_again(process)

    def dead(self) -> list[Process]:
        return [p for p in self.processes if p.proc is not None and p.restart_at is None and not p.running()]

    def exit_code(self, process: Process) -> int:
        proc = process.proc
        if proc.returncode is None:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:  # a zombie someone else reaped cannot happen; be safe anyway
                return 1
        self.children.pop(proc.pid, None)
        return proc.returncode

    def show_log(self, process: Process) -> None:
        _write(sys.stderr, process.log_report())

    # --- stopping ---
    def _wait_gone(self, pids: list[int], timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline and not self.force:
            time.sleep(0.1)
            self.reap()
        return [pid for pid in pids if alive(pid)]

    def stop_all(self) -> None:
        """stop() once (a second Ctrl-C meanwhile kills at once, and main() calling it again does nothing)."""
        if self.stopping:
            return
        self.stopping = True
        self.stop()

    def stop(self, processes: Iterable[Process] | None = None) -> None:
        """`processes` (default: all) in reverse order of start (TERM, wait, KILL with what each started), then
        whatever is left of what they started (of what anything below this one started, in the command line)."""
        self.remember()
        chosen = [p for p in reversed(self.processes) if processes is None or p in processes]
        running = [p for p in chosen if p.running()]
        if running and self.owns_everything_below:  # run.sh's terminal; a library user (tests) has its own output
            names = ", then ".join(p.name for p in running)
            say(f"Stopping {names} (up to {self.stop_timeout:.0f} s each; Ctrl-C again to kill at once)")
        for process in running:
            tree = descendants(process.pid)
            signal_all([process.pid], signal.SIGTERM)
            if self._wait_gone([process.pid], self.stop_timeout):
                why = "Ctrl-C twice" if self.force else f"still running after {self.stop_timeout:.0f} s"
                extra = still_running(tree)
                warn(
                    f"killing process {process.pid} ({why}) and what it started: {' '.join(map(str, extra)) or 'nothing'}"
                )
                signal_all([process.pid, *extra], signal.SIGKILL)
                self._wait_gone([process.pid], 5)
            self.reap()
        self.remember()
        if processes is None:
            left = still_running(self.known.items())
        else:
            left = still_running(item for process in chosen for item in process.tree.items())
        if left:
            warn("stopping what was left running:")
            for pid in left:
                _write(sys.stderr, f"  {pid} {short_command(pid)}\n")
            signal_all(left, signal.SIGTERM)
            if rest := self._wait_gone(left, self.stop_timeout):
                signal_all(rest, signal.SIGKILL)
                self._wait_gone(rest, 5)
        self.reap()

    def finish(self, code: int) -> int:
        self.stop_all()
        return code

    # --- the phases ---
    def run(self) -> int:
        self.install_signals()
        self.owns_everything_below = True
        become_subreaper()
        try:
            for process in self.processes:
                self.start(process)
        except StartError as exc:
            error(str(exc))
            return self.finish(127)
        code = self.wait_until_ready()
        if code is not None:
            return self.finish(code)
        code = self.run_when_ready()
        if code is not None:
            return self.finish(code)
        if self.banner:
            _write(sys.stdout, self.banner.rstrip("\n") + "\n\n")
        try:
            return self.finish(self.watch())
        except StartError as exc:
            error(str(exc))
            return self.finish(127)

    def _died_at_start(self, processes: Iterable[Process] | None = None) -> NotReady | None:
        for process in self.dead():
            if processes is None or process in processes:
                code = self.exit_code(process)
                why = f"{process.name} stopped by itself ({describe_exit(code)})"
                return NotReady(why, exit_status(code), [process])
        return None

    def _report(self, failure: NotReady) -> int:
        error(failure.reason)
        for process in failure.shown:
            self.show_log(process)
        return failure.code

    def wait_ready(self, processes: Iterable[Process] | None = None, timeout: float | None = None) -> bool:
        """Until each of `processes` (default: all) answers 200 at its ready URL (--ready-timeout by default):
        True; False when a signal cut it short (only the command line handles them). NotReady when one of them
        dies first, or when time runs out."""
        processes = list(self.processes if processes is None else processes)
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for process in processes:
            process.answering = False
        while True:
            if self.signalled is not None:
                return False
            if (died := self._died_at_start(processes)) is not None:
                raise died
            for process in processes:
                process.answering = process.answering or process.answers()
            if all(p.answering for p in processes):
                self.remember()  # what they started to answer (the hub's proxy), should one die before a tick
                return True
            if time.monotonic() >= deadline:
                last = "; ".join(
                    f"{p.name}: {p.ready_url}" + (f" (as host {p.ready_host})" if p.ready_host else "")
                    + f": {http_status(p.ready_url, p.ready_host)}"
                    for p in processes if not p.answering
                )  # fmt: skip
                raise NotReady(f"not everything answered 200 within {timeout:.0f} s: {last}", 1, processes)
            self.tick()

    def wait_until_ready(self) -> int | None:
        try:
            if self.wait_ready():
                return None
        except NotReady as failure:
            return self._report(failure)
        _write(sys.stdout, "\n")
        return 0

    def run_when_ready(self) -> int | None:
        for command in self.when_ready:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            self.children[proc.pid] = proc
            while proc.poll() is None:
                if self.signalled is not None:
                    signal_all([proc.pid], signal.SIGTERM)
                    proc.wait()
                    _write(sys.stdout, "\n")
                    return 0
                if (died := self._died_at_start()) is not None:
                    signal_all([proc.pid], signal.SIGTERM)
                    proc.wait()
                    return self._report(died)
                self.tick(0.2)
            self.children.pop(proc.pid, None)
            if proc.returncode != 0:
                warn(f"`{' '.join(command)}` failed ({describe_exit(proc.returncode)}); carrying on")
        return None

    def watch(self) -> int:
        """Until a signal: restart what dies, say when a restarted process answers again."""
        while self.signalled is None:
            now = time.monotonic()
            for process in self.dead():
                code = self.exit_code(process)
                while process.restarts and now - process.restarts[0] > self.restart_window:
                    process.restarts.popleft()
                if len(process.restarts) >= self.max_restarts:
                    error(
                        f"{process.name} stopped by itself again ({describe_exit(code)}): "
                        f"{len(process.restarts) + 1} times within {self.restart_window / 60:g} min; "
                        f"{self.label} gives up"
                    )
                    self.show_log(process)
                    return exit_status(code)
                process.restarts.append(now)
                delay = min(self.restart_delay * 2 ** (len(process.restarts) - 1), 60)
                process.restart_at = now + delay
                log = f"; its log: {show_path(process.log)}" if process.log else ""
                warn(
                    f"{process.name} stopped by itself ({describe_exit(code)}); starting it again in {delay:g} s "
                    f"(restart {len(process.restarts)} of at most {self.max_restarts} "
                    f"within {self.restart_window / 60:g} min{log})"
                )
                self.stop_leftovers(process)
            for process in self.processes:
                if process.restart_at is not None and now >= process.restart_at:
                    self.start_again(process)
                elif process.running() and not process.answering and process.ready_deadline is not None:
                    if process.answers():
                        process.answering, process.ready_deadline = True, None
                        say(f"{process.name} answers again")
                    elif now >= process.ready_deadline:
                        process.ready_deadline = None
                        warn(f"{process.name} was started again but does not answer {process.ready_url} yet")
            self.tick()
        _write(sys.stdout, "\n")
        return 0


# --- command line ---------------------------------------------------------------------------------------------
USAGE = __doc__.split("\n\n")[1]


def _blocks(argv: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Split argv into the global options and the `--start ... ;` / `--when-ready ... ;` blocks."""
    options, blocks, i = [], [], 0
    while i < len(argv):
        if argv[i] in {"--start", "--when-ready"}:
            try:
                end = argv.index(";", i + 1)
            except ValueError:
                raise SystemExit(f"error: {argv[i]} ... must end with a ';' argument\n{USAGE}") from None
            blocks.append((argv[i], argv[i + 1 : end]))
            i = end + 1
        else:
            options.append(argv[i])
            i += 1
    return options, blocks


def parse(argv: list[str]) -> Supervisor:
    options, blocks = _blocks(argv)
    start = argparse.ArgumentParser(prog="--start", usage="--start NAME [options] -- COMMAND ARGS... ;")
    start.add_argument("name")
    start.add_argument("--log", type=Path, help="append the output here (else: the supervisor's own)")
    start.add_argument("--cwd", type=Path, default=Path.cwd())
    start.add_argument("--ready", help="a URL that answers 200 once the process is ready")
    start.add_argument("--host", help="the Host header to ask --ready with")
    start.add_argument(
        "--keep-running", action="append", default=[], metavar="TEXT",
        help="when the process dies, what it started keeps running if its command line contains TEXT",
    )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="python -m supervise", usage=USAGE, epilog=start.format_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--label", default="supervise", help="who starts the processes, in messages and logs")
    parser.add_argument("--ready-timeout", type=float, default=60, help="seconds for every --ready URL to answer")
    parser.add_argument("--stop-timeout", type=float, default=20, help="seconds from TERM to KILL, per process")
    parser.add_argument("--max-restarts", type=int, default=5, help="restarts allowed within --restart-window")
    parser.add_argument("--restart-window", type=float, default=300, help="seconds")
    parser.add_argument("--restart-delay", type=float, default=1, help="seconds before the first restart")
    parser.add_argument("--banner", help="printed once everything answers and the --when-ready commands ran")
    args = parser.parse_args(options)

    processes, when_ready = [], []
    for kind, words in blocks:
        if kind == "--when-ready":
            if not words:
                parser.error("--when-ready needs a command")
            when_ready.append(words)
            continue
        if "--" not in words or words.index("--") == len(words) - 1:
            parser.error(f"--start {' '.join(words[:1])}: the command follows '--'")
        split = words.index("--")
        spec = start.parse_args(words[:split])
        processes.append(
            Process(spec.name, words[split + 1 :], spec.cwd, spec.log, spec.ready, spec.host, spec.keep_running)
        )
    if not processes:
        parser.error("nothing to start: give at least one --start NAME ... -- COMMAND ;")
    return Supervisor(
        processes, label=args.label, ready_timeout=args.ready_timeout, stop_timeout=args.stop_timeout,
        max_restarts=args.max_restarts, restart_window=args.restart_window, restart_delay=args.restart_delay,
        when_ready=when_ready, banner=args.banner,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    supervisor = parse(sys.argv[1:] if argv is None else argv)
    try:
        return supervisor.run()
    except BaseException:
        supervisor.stop_all()  # a bug here must not leave the hub and the users' servers running
        raise


if __name__ == "__main__":
    sys.exit(main())
