"""singleuser/image/cfps_singleuser.py, the students' server command in the image (cfps-singleuser): JupyterHub's
jupyterhub-singleuser without the hub's handlers, ORM and Alembic, run here with the hub's own JupyterHub
(the image's is the same version; tests/docker/test_image.py runs it in the image)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from tests.hubconfig.test_hub_entry import imported
from tests.live import REPO

SCRIPT = REPO / "singleuser" / "image" / "cfps_singleuser.py"
HUB_ONLY = {"jupyterhub.handlers.base", "jupyterhub.spawner", "jupyterhub.user", "sqlalchemy", "alembic"}


def python(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd="/", capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_server_command_is_jupyterhub_singleuser_without_the_hubs_own_modules():
    done = python("-X", "importtime", str(SCRIPT), "--version")
    assert done.stdout.strip() == metadata.version("jupyterhub")
    modules = imported(done.stderr)
    assert {"jupyterhub.singleuser.extension", "jupyterhub.services.auth", "jupyterhub.log"} <= modules
    assert not HUB_ONLY & modules and "rfc3987_syntax.syntax_helpers" not in modules


def test_without_it_jupyterhub_singleuser_would_load_them():
    # The test above means something only while jupyterhub.singleuser imports them.
    done = python("-X", "importtime", "-c", "import jupyterhub.singleuser")
    assert HUB_ONLY <= imported(done.stderr)


AFTERWARDS = f"""
import runpy, sys
main = runpy.run_path({str(SCRIPT)!r})["import_singleuser"]()
assert callable(main) and "jupyterhub.singleuser.extension" in sys.modules
from jupyterhub import log, orm, scopes, utils
assert "alembic" not in sys.modules and "sqlalchemy" not in sys.modules and "jupyterhub.handlers" not in sys.modules
# What the server calls still works, without the ORM...
assert scopes._intersect_expanded_scopes({{"access:servers!user=ana"}}, {{"access:servers"}}) == {{"access:servers!user=ana"}}
assert "alembic" not in sys.modules
# ...which loads at its first use, as the hub's handlers do at a later import.
assert orm.User.__tablename__ == "users" and "alembic" in sys.modules
from jupyterhub.handlers.pages import HealthCheckHandler
assert HealthCheckHandler.__module__ == "jupyterhub.handlers.pages"
assert log.HealthCheckHandler is not HealthCheckHandler  # log_request's, a class no server handler is
from sqlalchemy.exc import SQLAlchemyError
assert SQLAlchemyError.__module__ == "sqlalchemy.exc" and utils.SQLAlchemyError is not SQLAlchemyError
print("ok")
"""


def test_what_it_leaves_out_still_loads_when_something_uses_it():
    assert python("-c", AFTERWARDS).stdout.strip() == "ok"
