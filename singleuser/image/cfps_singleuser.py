#!/usr/bin/env python
"""The students' server: JupyterHub's `jupyterhub-singleuser`, minus what it imports and never runs.

Installed in the notebook image as /usr/local/bin/cfps-singleuser (both recipes, singleuser/image/); the hub
starts it (hubconfig/docker.py). Arguments and behaviour are `jupyterhub.singleuser.main`'s.

Why: importing jupyterhub.singleuser took about 2 s of CPU per server start, against about 1.1 s for bare
JupyterLab (python -X importtime in the image), and a class starts its servers together on a few cores.
Besides jsonschema's grammar (below), two imports load the hub's own machinery, which a single-user server
never runs:
- jupyterhub.log imports jupyterhub.handlers.pages, hence every hub request handler, the hub's ORM, its
  Spawner and User classes, only to name HealthCheckHandler in `log_request`, which keeps the hub's own
  health checks out of its access log. No request of a single-user server is one: that name is bound to a
  class nothing is an instance of, for this one import; a later `import jupyterhub.handlers` gets the real
  package.
- jupyterhub.scopes and jupyterhub.metrics import jupyterhub.orm (the hub's database: SQLAlchemy's ORM,
  Alembic) and jupyterhub.roles; the server calls only scopes' pure functions, which touch the ORM when given
  a database session, never here. Both modules are loaded lazily (importlib.util.LazyLoader): at the first
  use of one of their names, if any.
- jupyterhub.utils imports SQLAlchemy (about 0.2 s of CPU: its engine and SQL compiler) for one name,
  SQLAlchemyError, which only `catch_db_error`, a decorator of the hub's database handlers, catches. During
  this import sqlalchemy.exc is a stand-in whose SQLAlchemyError nothing raises; a later `import sqlalchemy`
  (the lazy ORM above, a student's kernel is another process anyway) gets the real package.
- jsonschema's checker for the "iri" format imports rfc3987_syntax, which compiles a grammar: about 1 s of CPU
  and 17 MB per server, for a format no Jupyter schema uses (hubconfig/hub.py does the same for the hub).
- jupyterhub.httpclient imports aiohttp (about 0.15 s of CPU, and memory for the server's life) for the
  server's few requests to the hub: a version check before it listens, its OAuth token exchange and user
  lookups, activity reports. They go through Tornado's HTTP client instead, which the server has loaded anyway:
  the same requests, the same answers to the callers (status, headers, text, json), connection errors raise as
  aiohttp's do. A request with any other option goes through JupyterHub's own client, loaded then.
Everything else of jupyterhub.singleuser is unchanged (tests/docker/ logs in through it and watches the idle
culler use its activity).
"""

import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types

LAZY = ("jupyterhub.orm", "jupyterhub.roles", "aiohttp")
# What the server's requests to the hub pass to jupyterhub.httpclient.fetch (JupyterHub 6: its HubOAuth, the
# version check, activity reports); _fetch sends those through Tornado.
TORNADO_OPTIONS = {"headers", "data", "ssl"}


class _LazyFinder:
    """Finds LAZY modules where Python would, to be executed at the first use of one of their names."""

    @staticmethod
    def find_spec(name, path, target=None):
        if name not in LAZY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def import_singleuser():
    """Import jupyterhub.singleuser as the module docstring says; returns its `main`."""
    sys.modules.setdefault("rfc3987_syntax", None)  # `import rfc3987_syntax` raises ImportError
    pages = types.ModuleType("jupyterhub.handlers.pages")
    pages.HealthCheckHandler = type("HealthCheckHandler", (), {"__doc__": "The hub's, in name only: none here."})
    handlers = types.ModuleType("jupyterhub.handlers")
    handlers.__path__ = []
    sqlalchemy = types.ModuleType("sqlalchemy")
    sqlalchemy.__path__ = []
    sqlalchemy_exc = types.ModuleType("sqlalchemy.exc")
    sqlalchemy_exc.SQLAlchemyError = type(
        "SQLAlchemyError", (Exception,), {"__doc__": "SQLAlchemy's, in name only: no database here."}
    )
    httpclient = types.ModuleType("jupyterhub.httpclient")
    httpclient.fetch = _fetch
    stand_ins = {
        "jupyterhub.httpclient": httpclient,
        "jupyterhub.handlers": handlers,
        "jupyterhub.handlers.pages": pages,
        "sqlalchemy": sqlalchemy,
        "sqlalchemy.exc": sqlalchemy_exc,
    }
    sys.modules.update(stand_ins)
    sys.meta_path.insert(0, _LazyFinder)
    try:
        from jupyterhub.singleuser import main
    finally:
        sys.meta_path.remove(_LazyFinder)
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return main


class _Response:
    """What the server's callers read of aiohttp's response (status, headers, text, json), from Tornado's."""

    def __init__(self, response):
        self.status = response.code
        self.reason = response.reason
        self.headers = response.headers  # case-insensitive, as aiohttp's
        self._body = response.body or b""

    @property
    def ok(self) -> bool:
        return self.status < 400

    async def text(self) -> str:
        return self._body.decode("utf-8", "replace")

    async def json(self):
        return json.loads(self._body)

    def raise_for_status(self) -> None:
        if not self.ok:
            from tornado.httpclient import HTTPClientError

            raise HTTPClientError(self.status, self.reason)

    def release(self) -> None:
        pass


async def _fetch(url, *, method="GET", raise_for_status=True, **kwargs):
    """jupyterhub.httpclient.fetch for the server's requests to the hub, through Tornado's HTTP client (module
    docstring); a request with other options than these goes through JupyterHub's own, loaded then."""
    if not set(kwargs) <= TORNADO_OPTIONS:
        real = importlib.import_module("jupyterhub.httpclient")
        return await real.fetch(url, method=method, raise_for_status=raise_for_status, **kwargs)
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    request = HTTPRequest(
        url,
        method=method,
        headers=kwargs.get("headers"),
        body=kwargs.get("data"),
        ssl_options=kwargs.get("ssl"),
        allow_nonstandard_methods=True,  # as aiohttp: a POST without a body, a method Tornado does not list
    )
    # Connection errors and timeouts raise, as aiohttp's do; an HTTP error status only if asked to.
    response = _Response(await AsyncHTTPClient().fetch(request, raise_error=False))
    if raise_for_status:
        response.raise_for_status()
    return response


if __name__ == "__main__":
    sys.exit(import_singleuser()())
