"""./run.sh itself, as a person runs it (the embedded default: SQLite, the Python proxy, the local spawner),
with its state in tmp_path and free ports: the banner; the hub killed (SIGKILL, no clean-up) while a student
works in JupyterLab, started again by run.sh's supervisor (supervise/supervisor.py), finds the student's server
and kernel; Ctrl-C stops everything and leaves no process behind. The systemd variant of the hub kill is
tests/ops/test_hub_restart.py."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from supervise import command_line, descendants, still_running
from tests.e2e import flows
from tests.live import HUB_HOST, PORTAL_HOST, REPO, free_port, public_url, secret_file
from tests.ops.test_hub_restart import assert_found_again, student_with_a_kernel


class RunSh:
    """./run.sh in a session of its own, seen through the attributes tests/e2e/flows.py uses of a Stack."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.public_port = free_port()
        self.base_url = f"http://{PORTAL_HOST}:{self.public_port}"
        self.hub_base_url = f"http://{HUB_HOST}:{self.public_port}"
        self.user_subdomains = True  # run.sh's default: each student on <name>.localhost
        var = tmp_path / "var"
        self.env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
        self.env.update({
            "CFPS_ENV_FILE": "/dev/null", "APP_PROFILE": "dev", "CFPS_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}", "DATASET_DATABASE_URL": "",
            "SECRET_KEY": "run-sh-test-" + secrets.token_urlsafe(40), "INVITE_CODES": flows.INVITE_CODE,
            "PORT": str(self.public_port), "PORTAL_PORT": str(free_port()), "HUB_PORT": str(free_port()),
            "PROXY_API_PORT": str(free_port()), "PROXY": "python", "SPAWNER": "local", "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        self.logs = var / "log"
        self.out, self.err = open(tmp_path / "stdout", "wb"), open(tmp_path / "stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(["bash", str(REPO / "run.sh")], cwd=REPO, env=self.env, stdout=self.out,
                                     stderr=self.err, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.seen: dict[int, str] = {}

    # --- what flows.py uses ---
    def url(self, path: str = "/") -> str:
        return public_url(self, path)

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HUB_PORT']}/jupyter/hub/api"

    def hub_admin_token(self) -> str:
        return secret_file(self.env, "HUB_API_TOKEN")

    def log_tail(self, lines: int = 60) -> str:
        parts = [f"--- run.sh stdout ---\n{self.stdout()}", f"--- run.sh stderr ---\n{self.stderr()}"]
        for name in ("hub.log", "portal.log"):
            path = self.logs / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(none)"]
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    # --- the process ---
    def stdout(self) -> str:
        return (self.tmp_path / "stdout").read_text(errors="replace")

    def stderr(self) -> str:
        return (self.tmp_path / "stderr").read_text(errors="replace")

    def look(self) -> None:
        self.seen.update(descendants(self.proc.pid))

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.look()
            if value := predicate():
                return value
            time.sleep(0.5)
        raise AssertionError(flows.explain(self, f"{what}: not within {timeout:.0f} s (run.sh: {self.proc.poll()})"))

    def hub_pid(self) -> int:
        """The JupyterHub that run.sh's supervisor started (its child; run.sh exec'd into the supervisor)."""
        for pid, _ in descendants(self.proc.pid):
            if "hubconfig/hub.py -f " in command_line(pid):
                return pid
        raise AssertionError(flows.explain(self, "no JupyterHub below run.sh"))

    def close(self) -> None:
        self.look()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in still_running(self.seen.items()):
            os.kill(pid, signal.SIGKILL)
        self.out.close()
        self.err.close()


@pytest.fixture
def run_sh(tmp_path):
    started = RunSh(tmp_path)
    yield started
    started.close()


def test_run_sh_restarts_a_killed_hub_that_finds_the_students_server_and_ctrl_c_leaves_nothing(run_sh):
    stack, username = run_sh, flows.unique_username("ria")
    stack.wait_for(lambda: "Stop with Ctrl-C." in stack.stdout(), 300, "run.sh's banner")
    out = stack.stdout()
    assert f"CFPS portal:   {stack.base_url}/" in out and f"Invite codes:  {flows.INVITE_CODE}" in out
    assert "WARNING: SPAWNER=local" in out
    port = stack.public_port
    assert f"Students:      each on a host of their own, http://<name>.localhost:{port}/jupyter/user/<name>/" in out

    with flows.new_client(stack) as client:
        kernel_url = student_with_a_kernel(stack, client, username)
        stack.look()
        servers = [pid for pid in stack.seen if "jupyterhub-singleuser" in command_line(pid)]
        assert servers, flows.explain(stack, "no jupyterhub-singleuser below run.sh")

        os.kill(stack.hub_pid(), signal.SIGKILL)
        stack.wait_for(lambda: "JupyterHub answers again" in stack.stdout(), 120, "the hub started again")

        err = stack.stderr()
        assert "JupyterHub stopped by itself (killed by SIGKILL); starting it again in 1 s" in err
        # The dead hub's proxy and idle culler are stopped (the new hub starts its own); its server is not.
        stopped = err.split("stopping what JupyterHub left running:\n", 1)[1].split("\nwarning: ", 1)[0]
        assert "jupyterhub_idle_culler" in stopped and "pyproxy.py" in stopped, err
        assert "singleuser" not in stopped, err
        assert still_running((pid, stack.seen[pid]) for pid in servers) == servers, "the server died with the hub"
        assert_found_again(stack, client, username, kernel_url)

    stack.look()
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=90) == 0, flows.explain(stack, "run.sh did not exit 0 after Ctrl-C")
    assert "Stopping the course worker, then JupyterHub, then the portal (gunicorn)" in stack.stdout()
    left = still_running(stack.seen.items())
    assert not left, "still running after Ctrl-C:\n" + "\n".join(f"  {pid} {command_line(pid)}" for pid in left)
    assert len(stack.seen) >= 5  # the portal, the hub, its proxy, the server and its kernel, at least
