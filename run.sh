#!/usr/bin/env bash
# Run the whole system on its embedded defaults (SQLite, in-process cache, no Nginx, the local spawner):
# installs what is missing, creates .env on first run, migrates, then starts in the background
#   - the portal: gunicorn on 127.0.0.1:PORTAL_PORT (default 8010), log in var/log/portal.log
#   - JupyterHub: the hub on 127.0.0.1:HUB_PORT (default 8081), which starts its proxy on PORT (default 8000,
#     the one public port: / goes to the portal, /jupyter/ to the hub), the idle culler and the users'
#     servers; log in var/log/hub.log
# and waits. Ctrl-C stops both; if either one dies, the other is stopped too and run.sh exits non-zero.
# Every setting comes from the environment, else from .env, else the defaults (see .env.example).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# `./run.sh --prepare`: install and prepare everything (Debian packages, .venv, the Node.js proxy when PROXY is
# node, the database, static files, bootstrap), then exit without starting anything. For a server where
# systemd runs the processes (README, "Deploy to a server").
PREPARE_ONLY=""
case "${1:-}" in
"") ;;
--prepare) PREPARE_ONLY=1 ;;
*)
    echo "usage: ./run.sh [--prepare]" >&2
    exit 2
    ;;
esac

# Started with SIGINT ignored (`./run.sh &` from another script, nohup): bash can then neither trap it nor give
# it back to its children, so `kill -INT` would do nothing and the hub's culler would ignore SIGINT too (the
# hub stops services with SIGINT first, then waits 10 s). Start again with SIGINT at its default.
if [[ -z "${_CFPS_RUN_SIGINT:-}" && -r /proc/$$/status ]] && command -v python3 >/dev/null 2>&1; then
    ignored=$(awk '/^SigIgn:/ {print $2}' "/proc/$$/status")
    if [[ "$ignored" =~ ^[0-9a-fA-F]+$ ]] && ((16#$ignored & 2)); then
        export _CFPS_RUN_SIGINT=1
        exec python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$PWD/run.sh" "$@"
    fi
fi

# shellcheck source=deploy/lib.sh
. deploy/lib.sh

ROOT=$PWD
# The Python code reads CFPS_VAR_DIR from the environment; make it absolute, since the hub runs in var/hub.
VAR_DIR=${CFPS_VAR_DIR:-$ROOT/var}
[[ "$VAR_DIR" == /* ]] || VAR_DIR=$ROOT/$VAR_DIR
[[ -n "${CFPS_VAR_DIR:-}" ]] && export CFPS_VAR_DIR=$VAR_DIR
LOG_DIR=$VAR_DIR/log

ensure_apt_packages "${BASE_PACKAGES[@]}" curl
ensure_venv
ensure_env_file
mkdir -p "$LOG_DIR" "$VAR_DIR/hub"

# Everything the rest of this script needs, read once through the same code as the portal and the hub.
port="" bind_ip="" portal_port="" hub_port="" proxy_api_port="" public_url="" hub_url="" portal_host="" hub_host=""
proxy="" spawner="" bind=""
admin_user="" invite_codes=""
settings=$(.venv/bin/python - <<'PY'
import shlex

from portal import topology
from portal.envfile import Env, EnvError
from hubconfig.docker import choose_spawner

try:
    env = Env()
    topo = topology.from_env(env)
except EnvError as exc:
    raise SystemExit(f"error: {exc}") from None
profile = env.get("APP_PROFILE", "dev").strip().lower()
codes = ["".join(c.split()).upper() for c in env.list("INVITE_CODES", sep=";")]
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
    "proxy": env.get("PROXY", "node" if profile == "prod" else "python").strip().lower(),
    "spawner": choose_spawner(env)[0],  # the hub's own choice (hubconfig/docker.py)
    "bind": env.get("BIND"),
    "admin_user": env.get("ADMIN_USERNAME", "cfps-admin"),
    "invite_codes": " ".join(codes) or "(none in .env; make one with: .venv/bin/python manage.py create_invite)",
}
for name, value in values.items():
    print(f"{name}={shlex.quote(str(value))}")
PY
) || die "could not read the settings from .env (see above)"
eval "$settings"

[[ "$proxy" == python || "$proxy" == node ]] || die "PROXY must be python or node, not '$proxy'"
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

# --- the two processes -------------------------------------------------------------------------------------
# Each one runs in its own session (setsid), so Ctrl-C reaches only this script, which then stops them in
# order: TERM lets JupyterHub stop its proxy, the culler and the users' servers itself.
PIDS=()
NAMES=()
LOGS=()
STOPPING=""
FORCE=""

# The short path of a log file, for messages.
show_path() { echo "${1#"$ROOT"/}"; }

# show_log NAME LOG: the last 30 lines that this run wrote to LOG (since start's marker line).
show_log() {
    local from
    from=$(grep -n '^=== .* run\.sh starts ' "$2" 2>/dev/null | tail -n 1 | cut -d: -f1)
    printf '\nLast 30 lines of %s (%s):\n' "$(show_path "$2")" "$1" >&2
    tail -n +"${from:-1}" "$2" | tail -n 30 >&2
}

# start NAME LOG DIR CMD...: run CMD in DIR in the background, output appended to LOG.
start() {
    local name=$1 log=$2 dir=$3
    shift 3
    printf '\n=== %s: run.sh starts %s ===\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$name" >>"$log"
    (cd "$dir" && exec setsid "$@") </dev/null >>"$log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
    LOGS+=("$log")
}

# True while the process runs (a zombie, dead but not yet reaped by its parent, does not count).
alive() { kill -0 "$1" 2>/dev/null && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]]; }

# Every descendant of a process (children first, then theirs), from one ps snapshot.
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            found[root] = 1
            do {
                more = 0
                for (p in parent) if (!(p in found) && (parent[p] in found)) { found[p] = 1; more = 1; print p }
            } while (more)
        }'
}

# The start time of a process (clock ticks since boot): with its pid, it names one process even if the pid is
# reused later. Fields after the command name, which may contain spaces; starttime is the 20th of them.
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# pid:start-time of everything the started processes have started, refreshed while waiting: if the hub dies
# without cleaning up (killed, crashed), its culler and the users' servers are orphans by then.
KNOWN=()
remember_descendants() {
    local pid child st
    KNOWN=()
    for pid in "${PIDS[@]}"; do
        for child in $(descendants "$pid"); do
            st=$(start_time "$child") && [[ -n "$st" ]] && KNOWN+=("$child:$st")
        done
    done
    return 0
}

# stop_pids PID...: TERM, wait up to 20 s (a second Ctrl-C cuts this short), then KILL with everything
# each one started.
stop_pids() {
    local i pid left extra why="still running after 20 s"
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        left=0
        for pid; do alive "$pid" && left=1; done
        [[ $left -eq 0 || -n "$FORCE" ]] && break
        sleep 0.1
    done
    [[ -n "$FORCE" ]] && why="Ctrl-C twice"
    for pid; do
        if alive "$pid"; then
            extra=$(descendants "$pid" | tr '\n' ' ')
            warn "killing process $pid ($why) and what it started: ${extra:-nothing}" || true
            # shellcheck disable=SC2086  # a list of pids
            kill -KILL "$pid" $extra 2>/dev/null || true
        fi
    done
}

# stop_all: stop both processes (JupyterHub stops its proxy, the culler and the users' servers itself), then
# whatever a process that died on its own left behind: its remembered descendants and the hub's proxy.
stop_all() {
    local pid entry pids=() orphans=()
    [[ -n "$STOPPING" ]] && return 0
    STOPPING=1
    for pid in "${PIDS[@]}"; do alive "$pid" && pids+=("$pid"); done
    if [[ ${#pids[@]} -gt 0 ]]; then
        say "Stopping (up to 20 s; Ctrl-C again to kill at once)" || true # the terminal may be gone (SIGHUP)
        stop_pids "${pids[@]}"
    fi
    for entry in "${KNOWN[@]}"; do
        pid=${entry%%:*}
        alive "$pid" && [[ "$(start_time "$pid")" == "${entry#*:}" ]] && orphans+=("$pid")
    done
    if pid=$(leftover_proxy) && alive "$pid" && [[ " ${orphans[*]} " != *" $pid "* ]]; then
        orphans+=("$pid")
    fi
    if [[ ${#orphans[@]} -gt 0 ]]; then
        warn "stopping what was left running:" || true
        ps -o pid=,args= -p "${orphans[*]}" | cut -c1-120 >&2 || true
        stop_pids "${orphans[@]}"
    fi
    wait 2>/dev/null || true
}

on_signal() {
    if [[ -n "$STOPPING" ]]; then
        FORCE=1
        return 0
    fi
    echo || true
    stop_all
    exit 0
}
trap on_signal INT TERM HUP
trap stop_all EXIT

# If a process has died: say which, show its log, stop the other one and exit non-zero.
check_processes() {
    local i rc
    for i in "${!PIDS[@]}"; do
        alive "${PIDS[$i]}" && continue
        rc=0
        wait "${PIDS[$i]}" 2>/dev/null || rc=$?
        printf '\nerror: %s stopped by itself (exit %s)\n' "${NAMES[$i]}" "$rc" >&2
        show_log "${NAMES[$i]}" "${LOGS[$i]}"
        stop_all
        exit "$((rc == 0 ? 1 : rc))"
    done
}

# From here on, whatever this script and its processes create (logs, databases, the hub's state) is for this
# user only; .venv, node_modules and the notebooks' files above were made readable on purpose.
umask 077
say "Starting the portal (gunicorn, 127.0.0.1:$portal_port) and JupyterHub (proxy: $proxy, $check_url)"
start "the portal (gunicorn)" "$LOG_DIR/portal.log" "$ROOT" \
    "$ROOT/.venv/bin/gunicorn" -c "$ROOT/deploy/gunicorn.conf.py" portal.wsgi
start "JupyterHub" "$LOG_DIR/hub.log" "$VAR_DIR/hub" \
    "$ROOT/.venv/bin/jupyterhub" -f "$ROOT/hubconfig/jupyterhub_config.py"

# HTTP status of a URL through the proxy, asked for as host $2 ("000" when nothing answers). The proxy routes by
# host name (the portal's and the hub's are different), and the names may not resolve on this machine yet.
http_status() {
    curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 3 -H "Host: $2:$port" "$1" 2>/dev/null || true
}

ready="" portal_status="" hub_status=""
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    check_processes
    remember_descendants
    portal_status=$(http_status "$check_url/" "$portal_host")
    hub_status=$(http_status "$check_url/jupyter/hub/api" "$hub_host")
    if [[ "$portal_status" == 200 && "$hub_status" == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.5 &
    wait $! || true
done
if [[ -z "$ready" ]]; then
    printf '\nerror: %s/ and %shub/api (through %s) did not both answer 200 within 60 s (last: %s and %s; 000 = no answer).\n' \
        "$public_url" "$hub_url" "$check_url" "$portal_status" "$hub_status" >&2
    for i in "${!PIDS[@]}"; do show_log "${NAMES[$i]}" "${LOGS[$i]}"; done
    stop_all
    exit 1
fi
# Hub users whose removal (a deactivated or deleted account) waited for the hub while it was down.
.venv/bin/python manage.py retry_hub_removals -v0 || warn "some hub removals are still pending; the portal keeps retrying"

cat <<EOF

  CFPS portal:   $public_url/
  JupyterLab:    $hub_url  (the hub, on a host name of its own; log in through the portal)
  Invite codes:  $invite_codes
  Admin:         $public_url/admin/  (user $admin_user)
  Logs:          $(show_path "$LOG_DIR/portal.log"), $(show_path "$LOG_DIR/hub.log")
  Proxy:         PROXY=$proxy on $bind_ip:$port
  Stop with Ctrl-C.

EOF
if [[ "$spawner" == local ]]; then
    cat <<'EOF'
  WARNING: SPAWNER=local, the embedded local spawner, gives users NO isolation: their notebooks run as this
  machine's user, and everyone can read everyone's files. Fine to try the system, not for a class.

EOF
fi

# Wait for either process to end (a signal interrupts the wait and runs on_signal).
while true; do
    check_processes
    remember_descendants
    sleep 1 &
    wait $! || true
done
