"""Start JupyterHub as its `jupyterhub` command does, minus one import nobody here uses:

    python hubconfig/hub.py -f hubconfig/jupyterhub_config.py

Why: JupyterHub's event log (jupyter_events) loads every format checker jsonschema has, and jsonschema's
checker for the "iri" format imports rfc3987_syntax, which compiles a Lark grammar when imported: 1.4 s of
CPU at every start and about 20 MB of the hub's memory for its whole life (a fifth of it), for a format that
no JupyterHub event schema uses. jsonschema imports that module under `suppress(ImportError)`, so marking it
absent only drops the "iri" checker. Everything else is `jupyterhub.app.main`, arguments and all.
"""

import sys
from pathlib import Path

# Run as a script, this folder would come first on the path and hubconfig/docker.py would be `import docker`:
# the repository instead, as the config file has it.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.modules.setdefault("rfc3987_syntax", None)  # `import rfc3987_syntax` now raises ImportError

from jupyterhub.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
