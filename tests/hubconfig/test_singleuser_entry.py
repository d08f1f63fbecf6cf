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
CLIENT = {"jupyterhub.httpclient", "aiohttp.client"}


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
    assert not CLIENT & modules  # the hub's HTTP client loads after the server listens


def test_without_it_jupyterhub_singleuser_would_load_them():
    # The test above means something only while jupyterhub.singleuser imports them.
    done = python("-X", "importtime", "-c", "import jupyterhub.singleuser")
    assert HUB_ONLY | CLIENT <= imported(done.stderr)


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


# A hub stand-in on 127.0.0.1, as the server's requests see the hub: GET answers with a version header, POST
# echoes what it got (method, content type, body), /missing answers 404.
HUB = """
import http.server, json, threading
class Hub(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        self.send_response(status)
        self.send_header("X-JupyterHub-Version", VERSION)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(404 if self.path.endswith("/missing") else 200, b'{"kind": "user"}')
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(200, json.dumps([self.command, self.headers["Content-Type"], body.decode()]).encode())
    def log_message(self, *args):
        pass
hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
threading.Thread(target=hub.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{hub.server_address[1]}/hub/api/"
"""

LOADED = f"""
import asyncio, logging, runpy, sys, types
runpy.run_path({str(SCRIPT)!r})["import_singleuser"]()
from jupyterhub.singleuser.extension import JupyterHubSingleUser
from jupyterhub import utils
logging.basicConfig(level=logging.INFO, format="%(message)s")
def extension(url):  # what check_hub_version reads of the extension
    return types.SimpleNamespace(hub_auth=types.SimpleNamespace(api_url=url), hub_http_client_opts={{}},
                                 log=logging.getLogger("server"), exit=sys.exit)
"""


def test_the_servers_requests_to_the_hub_get_their_answers_without_aiohttp():
    script = (
        LOADED
        + "VERSION = '0.0.1'\n"
        + HUB
        + """
asyncio.run(JupyterHubSingleUser.check_hub_version(extension(URL)))  # JupyterHub's own, before it listens
async def requests():
    get = await utils.fetch(URL + "user", headers={"Authorization": "token t"})  # as HubOAuth asks
    post = await utils.fetch(URL + "users/ana/activity", method="POST", data='{"a": 1}',
                             headers={"Content-Type": "application/json"})  # as activity reports
    token = await utils.fetch(URL + "oauth2/token", method="POST", data=b"code=c",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}, raise_for_status=False)
    missing = await utils.fetch(URL + "missing", raise_for_status=False)
    try:
        await utils.fetch(URL + "missing")
    except Exception as exc:
        raised = str(exc)
    return (get.status, get.ok, await get.json(), get.headers["x-jupyterhub-version"], await post.json(),
            await token.text(), missing.status, missing.ok, raised)
print(asyncio.run(requests()))
assert "aiohttp.client" not in sys.modules, "a request went through aiohttp"
async def other():  # an option the stand-in does not know: JupyterHub's own client
    import aiohttp
    return (await utils.fetch(URL, timeout=aiohttp.ClientTimeout(total=5))).status
assert asyncio.run(other()) == 200 and "aiohttp.client" in sys.modules
"""
    )
    done = python("-c", script)
    assert done.stdout.strip().splitlines()[-1] == repr(
        (
            200,
            True,
            {"kind": "user"},
            "0.0.1",
            ["POST", "application/json", '{"a": 1}'],
            '["POST", "application/x-www-form-urlencoded", "code=c"]',
            404,
            False,
            "HTTP 404: Not Found",
        )
    )
    # JupyterHub's own version warning, from the header the check read.
    assert "jupyterhub version 0.0.1 != jupyterhub-singleuser version" in done.stderr.lower(), done.stderr[-2000:]


def test_a_server_that_cannot_reach_the_hub_exits_before_it_listens():
    from tests.live import free_port

    # JupyterHub's check waits 2 to 16 s between its five attempts; here it does not wait.
    script = (
        LOADED
        + f"""
pause = asyncio.sleep
asyncio.sleep = lambda seconds: pause(0)
asyncio.run(JupyterHubSingleUser.check_hub_version(extension("http://127.0.0.1:{free_port()}/hub/api/")))
print("went on")
"""
    )
    done = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "went on" not in done.stdout, (done.stdout, done.stderr[-2000:])
    assert done.stderr.count("Failed to connect to my Hub at http://127.0.0.1:") == 5, done.stderr[-2000:]
