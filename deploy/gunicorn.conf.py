"""Gunicorn settings for ./run.sh and production: `gunicorn -c deploy/gunicorn.conf.py portal.wsgi`.

Values come from the process environment first, then `.env` (through `portal.config.env`, which imports
nothing from Django), then the defaults below:
- BIND             the whole bind address; overrides PORTAL_PORT (e.g. `unix:/run/cfps/portal.sock`). The
                   proxy still sends `/` to 127.0.0.1:PORTAL_PORT, so use it only when something else
                   routes to the portal
- PORTAL_PORT      port on 127.0.0.1 (default 8010). Not PORT: that one belongs to JupyterHub's proxy, which
                   sends `/` here and `/jupyter/` to the hub (see portal/config/topology.py); only the proxy should
                   reach gunicorn
- GUNICORN_WORKERS processes (default 1; one per core, at least 2, when APP_PROFILE=prod: portal.config)
- GUNICORN_THREADS threads per process (default 32: pages never queue behind password checks, which
                   PASSWORD_CHECKS_AT_ONCE bounds per process, the cores shared out over the processes; an
                   idle thread costs almost nothing)
"""

import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from portal.config import load  # noqa: E402
from portal.config.env import EnvError  # noqa: E402
from portal.config.filemodes import restrict_umask  # noqa: E402

try:
    _web = load().web
    _portal_port = load().topology.portal_port
except EnvError as exc:
    raise SystemExit(f"CFPS portal configuration error: {exc}") from None
# The SQLite database and its journals, and anything else the portal writes: owner-only (portal/config/filemodes.py).
restrict_umask()

chdir = str(BASE_DIR)
bind = [_web.bind or f"127.0.0.1:{_portal_port}"]

# ONE process by default: the embedded default keeps rate-limit counts in the in-process cache
# (LocMemCache), which is exact only when every request reaches the same process. Production shares its
# counts through Redis and runs one process per core (portal/config/sections.py says why not 2 x cores + 1).
workers = _web.workers
threads = _web.threads
worker_class = "gthread"

# Requests that take longer than this are killed; on stop or reload, workers get this long to finish.
timeout = 30
graceful_timeout = 20
keepalive = 5

# Access log to stdout, errors to stderr (systemd's journal or the terminal keeps them).
accesslog = "-"
errorlog = "-"
loglevel = "info"
# The access log masks tokens, codes and secrets in request lines and Referers (/o/authorize/?state=,
# the hub's /oauth_callback?code=, one-time links): portal/config/logscrub.py.
logger_class = "portal.config.logscrub.ScrubbingLogger"

# No gunicornc control socket: its default path is per user ($HOME/.gunicorn/gunicorn.ctl), so two
# instances (run.sh and a test server, or two checkouts) would fight over it.
control_socket_disable = True

# Believe X-Forwarded-* only from a reverse proxy on this machine.
forwarded_allow_ips = "127.0.0.1,::1"
