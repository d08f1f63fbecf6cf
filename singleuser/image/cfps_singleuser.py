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
The hub's OAuth, activity reports and everything else of jupyterhub.singleuser are unchanged
(tests/docker/ logs in through it and watches the idle culler use its activity).
"""

import importlib.machinery
import importlib.util
import sys
import types

LAZY = ("jupyterhub.orm", "jupyterhub.roles")


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
    stand_ins = {
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


if __name__ == "__main__":
    sys.exit(import_singleuser()())
