# shellcheck shell=bash
# Functions shared by ./run.sh and ./test.sh. Source it from the repository root:
#     cd "$(dirname "${BASH_SOURCE[0]}")" && . deploy/lib.sh
# Every function assumes the current directory is the repository root and that the caller runs with
# `set -euo pipefail`. Nothing here runs on its own when sourced.

# Debian packages the portal needs: Python with venv and headers, a C toolchain and the MariaDB client
# library for mysqlclient, and gettext for compilemessages.
# shellcheck disable=SC2034  # used by the scripts that source this file
BASE_PACKAGES=(python3 python3-venv python3-dev build-essential pkg-config libmariadb-dev gettext)

# pip: no nagging about its own version or about running as root (the venv is ours either way); npm: no
# update notice either.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore NPM_CONFIG_UPDATE_NOTIFIER=false

_APT_UPDATED=""

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# True when we can run commands as root: we are root, or sudo exists.
can_be_root() { [[ $EUID -eq 0 ]] || command -v sudo >/dev/null 2>&1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "this step needs root (or sudo): $*"
    fi
}

# ensure_apt_packages PKG...: install the Debian packages that are not installed yet. Runs `apt-get update`
# at most once per script run, and only when something has to be installed.
ensure_apt_packages() {
    local pkg missing=()
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "not a Debian/Ubuntu system; make sure these are installed yourself: $*"
        return 0
    fi
    for pkg in "$@"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if ! can_be_root; then
        die "missing Debian packages (need root or sudo to install them): ${missing[*]}"
    fi
    say "Installing Debian packages: ${missing[*]}"
    if [[ -z "$_APT_UPDATED" ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ensure_venv: .venv with Python >= 3.11 and the pinned requirements. pip runs only when requirements.txt
# changed since the last successful install (sha256 stamp inside .venv). Puts .venv/bin first on PATH.
ensure_venv() {
    local py=${PYTHON:-python3} stamp=.venv/.requirements.sha256 want have=""
    command -v "$py" >/dev/null 2>&1 || die "$py not found; install Python 3.11 or newer"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        die "Python 3.11 or newer is needed, but $py is $("$py" -c 'import platform; print(platform.python_version())')"
    fi
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        say "Creating .venv with $py"
        "$py" -m venv --clear .venv || die "could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)"
        .venv/bin/python -m pip install -q --upgrade pip || die "could not upgrade pip in .venv"
    fi
    want=$(sha256sum requirements.txt | cut -d' ' -f1)
    [[ -f $stamp ]] && have=$(<"$stamp")
    if [[ "$want" != "$have" ]]; then
        say "Installing Python packages from requirements.txt"
        .venv/bin/python -m pip install -q -r requirements.txt || die "pip install -r requirements.txt failed (see above)"
        printf '%s\n' "$want" >"$stamp"
    fi
    VIRTUAL_ENV="$PWD/.venv"
    PATH="$VIRTUAL_ENV/bin:$PATH"
    export VIRTUAL_ENV PATH
}

# ensure_node: Node.js >= 18 and npm, for PROXY=node (JupyterHub's own configurable-http-proxy). Uses the
# ones on PATH when both exist (NodeSource's nodejs, for one, bundles npm and conflicts with Debian's npm
# package, so asking apt for npm there would remove it); otherwise installs Debian's nodejs and npm.
ensure_node() {
    local version
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        ensure_apt_packages nodejs npm
    fi
    command -v node >/dev/null 2>&1 || die "node not found; install Node.js 18.18 or newer"
    command -v npm >/dev/null 2>&1 || die "npm not found; install npm"
    # 18.18: configurable-http-proxy wants 18, and `node --import` (hubconfig/nodeproxy.mjs) came in 18.18.
    version=$(node -p 'const [a, b] = process.versions.node.split(".").map(Number); a * 1000 + b' 2>/dev/null || echo 0)
    if [[ ! "$version" =~ ^[0-9]+$ ]] || ((version < 18018)); then
        die "Node.js 18.18 or newer is needed for configurable-http-proxy, but node is $(node --version 2>/dev/null || echo unknown)"
    fi
}

# ensure_node_modules: node_modules/ exactly as package-lock.json says (`npm ci`, never a global install).
# npm runs only when package.json or package-lock.json changed since the last successful install (sha256
# stamp inside node_modules/, which `npm ci` deletes and recreates) or the proxy is missing.
ensure_node_modules() {
    local stamp=node_modules/.package-lock.sha256 want have=""
    [[ -f package.json && -f package-lock.json ]] || die "package.json or package-lock.json is missing"
    want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
    [[ -f $stamp ]] && have=$(<"$stamp")
    if [[ "$want" != "$have" || ! -x node_modules/.bin/configurable-http-proxy ]]; then
        say "Installing Node.js packages from package-lock.json (npm ci)"
        npm ci --no-audit --no-fund || die "npm ci failed (see above)"
        printf '%s\n' "$want" >"$stamp"
    fi
}

# ensure_env_file: create .env from .env.example with a fresh SECRET_KEY and one invite code. Never touches
# an existing .env, nor anything when CFPS_ENV_FILE names another file.
ensure_env_file() {
    local secret code tmp
    if [[ -n "${CFPS_ENV_FILE:-}" ]]; then
        [[ -e "$CFPS_ENV_FILE" ]] || warn "CFPS_ENV_FILE=$CFPS_ENV_FILE does not exist; built-in defaults apply"
        return 0
    fi
    [[ -e .env ]] && return 0
    [[ -f .env.example ]] || die ".env.example is missing"
    secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
    code=$(python3 -c 'import secrets; a = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"; print("".join(secrets.choice(a) for _ in range(10)))')
    tmp=$(mktemp .env.XXXXXX)
    chmod 600 "$tmp"
    # token_urlsafe and the code alphabet contain no character special to sed.
    sed -e "s|^SECRET_KEY=.*|SECRET_KEY=$secret|" -e "s|^INVITE_CODES=.*|INVITE_CODES=$code|" .env.example >"$tmp"
    mv "$tmp" .env
    say "Created .env from .env.example (new SECRET_KEY, invite code $code)"
}

# ensure_secrets: generate the secrets that .env leaves out into var/secrets/ (0600; nothing in prod, where .env
# holds each one). Before anything imports the settings or the hub's config, which only read them.
ensure_secrets() {
    .venv/bin/python -m portal.config prepare || die "could not generate the secrets in var/secrets/ (see above)"
}

# env_value KEY: the value the portal will see (process environment, then .env, then the key table's default).
env_value() {
    .venv/bin/python -c 'import sys
from portal.config import load
print(load().env.get(sys.argv[1]))' "$1"
}

# True when locale/ holds at least one .po file.
have_po_files() { [[ -n "$(find locale -name '*.po' -print -quit 2>/dev/null)" ]]; }

# prepare_portal: database schema, translations, static files, admin account and invite codes.
prepare_portal() {
    say "Migrating the database"
    .venv/bin/python manage.py migrate --noinput
    if have_po_files; then
        say "Compiling translations"
        .venv/bin/python manage.py compilemessages --ignore=.venv --ignore=node_modules --ignore=var
    fi
    say "Collecting static files"
    .venv/bin/python manage.py collectstatic --noinput -v0
    say "Bootstrapping the admin account and invite codes"
    # run.sh starts the hub with exactly these settings, so the hub's registered URLs follow them.
    .venv/bin/python manage.py bootstrap --update-urls
}

# True when a MariaDB/MySQL server answers on 127.0.0.1:3306. `ping` exits 0 even when root may not log in,
# but not when the server refuses the client's host (e.g. skip-name-resolve without a root@127.0.0.1
# account), so an open port counts as alive too.
mariadb_alive() {
    mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1 ||
        timeout 3 bash -c ': <>/dev/tcp/127.0.0.1/3306' 2>/dev/null
}

# ensure_mariadb_running: start Debian's MariaDB without systemd if nothing answers on 127.0.0.1:3306, and
# wait up to 30 s for it. Returns non-zero (with a warning) when it cannot be reached.
ensure_mariadb_running() {
    local i
    mariadb_alive && return 0
    if ! can_be_root; then
        warn "MariaDB is not running on 127.0.0.1:3306 and starting it needs root or sudo"
        return 1
    fi
    say "Starting MariaDB"
    as_root install -d -o mysql -g mysql -m 755 /run/mysqld || return 1
    if ! as_root test -d /var/lib/mysql/mysql; then
        as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null || return 1
    fi
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || return 1
    for ((i = 0; i < 30; i++)); do
        mariadb_alive && return 0
        sleep 1
    done
    warn "MariaDB did not answer on 127.0.0.1:3306 within 30 s (its log: /var/log/mysql/error.log)"
    return 1
}

# --- Notebooks: chart libraries, IPython start-up, the synthetic sample (portal/config/dataset.py) --------------------
# The ECharts files pyecharts charts load in the browser, from the npm packages pinned in
# singleuser/notebook/package-lock.json, copied to singleuser/notebook/lib/cfps/static/ (git-ignored), which
# sync_data_folder copies into the data folder: students' browsers load them from their own server
# (~/data/lib/cfps/static/), never from a CDN. Names as pyecharts expects them (pyecharts/datasets/).
# shellcheck disable=SC2034  # also read by the image build
NOTEBOOK_ASSETS=(
    "echarts/dist/echarts.min.js:echarts.min.js"
    "echarts-gl/dist/echarts-gl.min.js:echarts-gl.min.js"
    "echarts-wordcloud/dist/echarts-wordcloud.min.js:echarts-wordcloud.min.js"
    "echarts-4/map/js/china.js:maps/china.js"
    "echarts/LICENSE:LICENSE-echarts.txt"
    "echarts/NOTICE:NOTICE-echarts.txt"
    "echarts-gl/LICENSE:LICENSE-echarts-gl.txt"
)

# ensure_notebook_assets: fill singleuser/notebook/lib/cfps/static/ with NOTEBOOK_ASSETS (npm ci, then copy). Runs
# npm only when singleuser/notebook/package*.json changed since the last copy (sha256 stamp in that folder).
ensure_notebook_assets() {
    local dir=singleuser/notebook out=singleuser/notebook/lib/cfps/static want have="" pair
    want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
    [[ -f $out/.package-lock.sha256 ]] && have=$(<"$out/.package-lock.sha256")
    [[ "$want" == "$have" ]] && return 0
    ensure_node
    say "Installing the chart libraries for notebooks (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $dir failed (see above)"
    rm -rf "$out"
    for pair in "${NOTEBOOK_ASSETS[@]}"; do
        install -D -m 644 "$dir/node_modules/${pair%%:*}" "$out/${pair#*:}" || die "npm package file ${pair%%:*} is missing"
    done
    rm -rf "$dir/node_modules" # 130 MB, of which the four files above are all that is used
    printf '%s\n' "$want" >"$out/.package-lock.sha256"
}

# ensure_notebook_env: what kernels of .venv need: the chart libraries, and IPython's kernel config that runs
# the data folder's startup/ files (singleuser/notebook/ipython_kernel_config.py -> .venv/etc/ipython/).
ensure_notebook_env() {
    ensure_notebook_assets
    .venv/bin/python -c 'from deploy.dataset import install_kernel_config as i; p, changed = i(); changed and print(f"==> Installed {p}")'
}

# prepare_dataset: for the embedded default (DATASET_DATABASE_URL empty), (re)write the synthetic sample into
# the local data folder; with MariaDB/MySQL the operator runs provision_dataset_user and load_sample_data.
prepare_dataset() {
    if [[ -z "$(env_value DATASET_DATABASE_URL)" ]]; then
        say "Writing the synthetic CFPS sample (SQLite, for notebooks)"
        .venv/bin/python manage.py load_sample_data -v0
    fi
}

# --- Users' containers: the Docker engine (portal/config/containers.py) -------------------------------------------------
# True when the Docker engine answers this user.
docker_alive() { docker info >/dev/null 2>&1; }

# ensure_docker_running: start dockerd if the engine does not answer (through systemd where it runs, else in
# the background with its log in /var/log/cfps-dockerd.log), and wait up to 60 s for it. Returns non-zero
# (with a warning) when it cannot be used.
ensure_docker_running() {
    local i
    docker_alive && return 0
    command -v dockerd >/dev/null 2>&1 || {
        warn "dockerd is not installed (apt-get install docker.io)"
        return 1
    }
    if ! can_be_root; then
        warn "the Docker engine does not answer and starting it needs root or sudo"
        return 1
    fi
    if [[ $EUID -ne 0 && -S /var/run/docker.sock ]] && as_root docker info >/dev/null 2>&1; then
        warn "the Docker engine runs, but $USER may not use it: add yourself to the docker group and log in again"
        return 1
    fi
    say "Starting the Docker engine"
    if [[ -d /run/systemd/system ]]; then
        as_root systemctl start docker || return 1
    else
        as_root sh -c 'setsid dockerd >>/var/log/cfps-dockerd.log 2>&1 </dev/null &' || return 1
    fi
    for ((i = 0; i < 60; i++)); do
        docker_alive && return 0
        sleep 1
    done
    warn "the Docker engine did not answer within 60 s (its log: journalctl -u docker, or /var/log/cfps-dockerd.log)"
    return 1
}
