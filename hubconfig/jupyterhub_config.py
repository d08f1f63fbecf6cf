# JupyterHub reads this file: `python hubconfig/hub.py -f hubconfig/jupyterhub_config.py`. The logic is in hubconfig/config.py.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hubconfig.config import HubConfigError, apply_config, process_environment, startup_warnings  # noqa: E402
from hubconfig.hubdb import use_wal  # noqa: E402
from portal.config import load  # noqa: E402
from portal.config.env import EnvError  # noqa: E402
from portal.config.filemodes import restrict_umask  # noqa: E402

restrict_umask()  # the hub's database, cookie secret and local users' homes: owner-only (portal/config/filemodes.py)
try:
    config = load()  # the typed configuration, parsed from .env once (portal/config/)
except EnvError as exc:
    raise HubConfigError(str(exc)) from None
os.environ.update(process_environment(config))
apply_config(c, config)  # noqa: F821  (`c` is provided by JupyterHub)
use_wal()  # the hub's SQLite: WAL, fewer syncs (hubconfig/hubdb.py)
for line in startup_warnings(config):
    print(line, file=sys.stderr)
