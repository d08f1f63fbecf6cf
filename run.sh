#!/usr/bin/env bash
# Run the whole system on its embedded defaults (SQLite, in-process cache, no Nginx, the local spawner):
# installs what is missing, creates .env on first run, migrates, then starts in the background
#   - the portal: gunicorn on 127.0.0.1:PORTAL_PORT (default 8010), log in var/log/portal.log
#   - JupyterHub: the hub on 127.0.0.1:HUB_PORT (default 8081), which starts its proxy on PORT (default 8000,
#     the one public port: / goes to the portal, /jupyter/ to the hub), the idle culler and the users'
#     servers; log in var/log/hub.log
#   - the course worker (manage.py course_worker): hand-outs and hand-ins, the only process that writes students'
#     homes; log in var/log/worker.log
# and waits (supervise/supervisor.py). If one of them dies, it is started again (at most 5 times in 5 min, else
# everything stops and run.sh exits non-zero); Ctrl-C stops them all, and what they started.
# Every setting comes from the environment, else from .env, else the defaults (see .env.example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# `./run.sh --prepare`: install and prepare everything (Debian packages, .venv, the generated secrets, the
# Node.js proxy when PROXY is node, the database, static files, bootstrap), then exit without starting anything.
# For a server where systemd runs the processes (docs/operator/deploy.md).
PREPARE_ONLY=""
case "${1:-}" in
"") ;;
--prepare) PREPARE_ONLY=1 ;;
*)
    echo "usage: ./run.sh [--prepare]" >&2
    exit 2
    ;;
esac

# shellcheck source=deploy/lib.sh
. deploy/lib.sh

ROOT=$PWD
# The Python code reads CFPS_VAR_DIR from the environment; make it absolute, since the hub runs in var/hub.
VAR_DIR=${CFPS_VAR_DIR:-$ROOT/var}
[[ "$VAR_DIR" == /* ]] || VAR_DIR=$ROOT/$VAR_DIR
[[ -n "${CFPS_VAR_DIR:-}" ]] && export CFPS_VAR_DIR=$VAR_DIR
LOG_DIR=$VAR_DIR/log

ensure_apt_packages "${BASE_PACKAGES[@]}"
ensure_venv
ensure_env_file
ensure_secrets
mkdir -p "$LOG_DIR" "$VAR_DIR/hub"

# Everything the rest of this script needs, read once through the same code as the portal and the hub.
port="" bind_ip="" portal_port="" hub_port="" proxy_api_port="" public_url="" hub_url="" portal_host="" hub_host=""
students=""
proxy="" spawner="" bind=""
admin_user="" invite_codes=""
settings=$(.venv/bin/python - <<'PY'
import shlex

from portal.config import load
from portal.config.env import EnvError
from hubconfig.docker import choose_spawner

try:
    config = load()
    topo = config.topology
    values = {
        "port": topo.port,
        "bind_ip": topo.bind_ip,
        "portal_port": topo.portal_port,
        "hub_port": topo.hub_port,
        "proxy_api_port": topo.proxy_api_port,
        "public_url": topo.public_url,
        "hub_url": topo.hub_public_url,
        "portal_host": topo.portal_host,
        "hub_host": topo.hub_host,
        "students": (
            f"every student on the hub's own origin (USER_SUBDOMAINS=false): {topo.hub_origin}/jupyter/user/<name>/"
            if topo.shared_hub_origin
            else f"each on a host of their own, {topo.user_origin_pattern}/jupyter/user/<name>/"
        ),
        "proxy": config.hub.proxy,
        "spawner": choose_spawner(config)[0],  # the hub's own choice (hubconfig/docker.py)
        "bind": config.web.bind,
        "admin_user": config.accounts.admin_username,
        "invite_codes": " ".join(config.accounts.invite_codes)
        or "(none in .env; make one with: .venv/bin/python manage.py create_invite)",
    }
except EnvError as exc:
    raise SystemExit(f"error: {exc}") from None
for name, value in values.items():
    print(f"{name}={shlex.quote(str(value))}")
PY
) || die "could not read the settings from .env (see above)"
eval "$settings"

if [[ -n "$bind" ]]; then
    warn "BIND=$bind is set: gunicorn listens there, but the proxy still sends / to 127.0.0.1:$portal_port (PORTAL_PORT)"
fi

# Loopback address to check the proxy on: the bind address itself unless it is a wildcard.
case "$bind_ip" in
"" | 0.0.0.0 | "::" | "[::]") check_host=127.0.0.1 ;;
*:*) check_host="[${bind_ip#[}" && check_host="${check_host%]}]" ;;
*) check_host=$bind_ip ;;
esac
check_url="http://$check_host:$port"

# True when something accepts connections on 127.0.0.1:PORT.
# shellcheck disable=SC2016  # $1 is expanded by the inner bash
port_busy() { timeout 2 bash -c ': <>/dev/tcp/127.0.0.1/$1' _ "$1" 2>/dev/null; }

# The pid of a proxy left running by an earlier hub (JupyterHub stops it itself on its next start).
leftover_proxy() {
    local pid
    pid=$(cat "$VAR_DIR/hub/proxy.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && grep -qa configurable-http-proxy "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

busy=()
[[ -z "$bind" ]] && port_busy "$portal_port" && busy+=("$portal_port (PORTAL_PORT)")
port_busy "$hub_port" && busy+=("$hub_port (HUB_PORT)")
if ! leftover_proxy >/dev/null; then
    port_busy "$port" && busy+=("$port (PORT)")
    port_busy "$proxy_api_port" && busy+=("$proxy_api_port (PROXY_API_PORT)")
fi
if [[ -z "$PREPARE_ONLY" && ${#busy[@]} -gt 0 ]]; then
    die "already in use on this machine: ${busy[*]}. Is run.sh already running? Else pick free ports, e.g. PORT=8100 PORTAL_PORT=8110 HUB_PORT=8181 PROXY_API_PORT=8101 ./run.sh"
fi

prepare_portal
# Notebooks: chart libraries, the kernel start-up config, and the synthetic sample (embedded default).
ensure_notebook_env
prepare_dataset
if [[ "$proxy" == node ]]; then
    ensure_node
    ensure_node_modules
fi
if [[ -n "$PREPARE_ONLY" ]]; then
    say "Prepared; nothing started (--prepare). Under systemd: systemctl restart cfps-portal cfps-hub"
    exit 0
fi

# --- the two processes: supervise/supervisor.py -----------------------------------------------------------------
# It starts each one in a session of its own with its log appended to var/log/, waits until both answer through
# the proxy (as host names the proxy routes by), restarts one that dies on its own (at most 5 times in 5 min;
# a dead hub's proxy and culler are stopped, the users' servers keep running and the new hub finds them), and
# on Ctrl-C stops the hub first (it stops its proxy, the culler and the users' servers itself), then the
# portal, then anything either left running.
banner=$(
    cat <<EOF

  CFPS portal:   $public_url/
  JupyterLab:    $hub_url  (the hub, on a host name of its own; log in through the portal)
  Students:      $students
  Invite codes:  $invite_codes
  Admin:         $public_url/admin/  (user $admin_user)
  Logs:          ${LOG_DIR#"$ROOT"/}/portal.log, ${LOG_DIR#"$ROOT"/}/hub.log, ${LOG_DIR#"$ROOT"/}/worker.log
  Proxy:         PROXY=$proxy on $bind_ip:$port
  Stop with Ctrl-C.
EOF
)
if [[ "$spawner" == local ]]; then
    banner+=$'\n\n'$(
        cat <<'EOF'
  WARNING: SPAWNER=local, the embedded local spawner, gives users NO isolation: their notebooks run as this
  machine's user, and everyone can read everyone's files. Fine to try the system, not for a class.
EOF
    )
fi

# From here on, whatever this script and its processes create (logs, databases, the hub's state) is for this
# user only; .venv, node_modules and the notebooks' files above were made readable on purpose.
umask 077
say "Starting the portal (gunicorn, 127.0.0.1:$portal_port), JupyterHub (proxy: $proxy, $check_url) and the course worker"
exec "$ROOT/.venv/bin/python" -m supervise --label run.sh --ready-timeout 60 --banner "$banner" \
    --start "the portal (gunicorn)" --log "$LOG_DIR/portal.log" --cwd "$ROOT" \
    --ready "$check_url/" --host "$portal_host:$port" \
    -- "$ROOT/.venv/bin/gunicorn" -c "$ROOT/deploy/gunicorn.conf.py" portal.wsgi \; \
    --start JupyterHub --log "$LOG_DIR/hub.log" --cwd "$VAR_DIR/hub" \
    --ready "$check_url/jupyter/hub/api" --host "$hub_host:$port" --keep-running jupyterhub-singleuser \
    -- "$ROOT/.venv/bin/python" "$ROOT/hubconfig/hub.py" -f "$ROOT/hubconfig/jupyterhub_config.py" \; \
    --start "the course worker" --log "$LOG_DIR/worker.log" --cwd "$ROOT" \
    -- "$ROOT/.venv/bin/python" manage.py course_worker \; \
    --when-ready "$ROOT/.venv/bin/python" manage.py retry_hub_removals -v0 \;
