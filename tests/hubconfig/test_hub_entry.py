"""hubconfig/hub.py, the hub's start command: JupyterHub itself, without the module it leaves out."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

from tests.live import REPO, hub_command


def run_hub(*args: str) -> subprocess.CompletedProcess:
    command = [*hub_command()[:2], *args]
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}  # every imported module, on stderr
    return subprocess.run(command, cwd="/", env=env, capture_output=True, text=True, timeout=120, check=False)


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_the_hub_command_is_jupyterhub_without_the_iri_grammar():
    done = run_hub("--version")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == metadata.version("jupyterhub")
    modules = imported(done.stderr)
    assert "jupyterhub.app" in modules and "jupyter_events.logger" in modules and "jsonschema" in modules
    # The grammar: 1.4 s and ~20 MB at every hub start (hubconfig/hub.py). The attempt to import
    # rfc3987_syntax itself is listed, and fails at once.
    assert "rfc3987_syntax.syntax_helpers" not in modules and "lark" not in modules
    # Run as a script from hubconfig/, `import docker` must still be the Docker SDK, not hubconfig/docker.py.
    assert str(REPO / "hubconfig") not in done.stderr


def test_without_it_jsonschema_would_load_the_grammar():
    # The test above means something only while jsonschema imports rfc3987_syntax when it is installed.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import jsonschema"], capture_output=True, text=True, timeout=60
    )
    assert {"rfc3987_syntax.syntax_helpers", "lark"} <= imported(done.stderr)
