#!/usr/bin/env bash
# Run every check: ruff, import contracts, missing migrations, translations, the docs, then pytest on SQLite and
# on MariaDB (with a real browser, a real hub and real containers). Arguments go to every pytest run:
# ./test.sh -k invite
#   ./test.sh --fast    the quick loop while coding: ruff, the contracts, migrations and the tests that start no
#                       process of their own (`-m "not live"`, unit and Django tests on SQLite), in about 2 min
# The SQLite pass runs files on TEST_WORKERS parallel workers (default 4; 0 for one process), then the tests
# that change the machine's Docker engine (`serial`) alone, beside the MariaDB pass. Installs what is missing (also Node.js and
# node_modules/, so the end-to-end tests can run the hub behind both proxies) and starts MariaDB if it is not
# running. Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

fast=false
if [[ "${1:-}" == "--fast" ]]; then
    fast=true
    shift
fi
workers=${TEST_WORKERS:-4}
parallel=() cpu_parallel=()
if [[ "$workers" != "0" ]]; then
    parallel=(-n "$workers" --dist loadfile) # files, e2e by proxy: tests/conftest.py work_unit
    cpu_parallel=(-n 2) # the MariaDB pass's tests compute rather than wait: a worker a core
fi

if $fast; then
    ensure_apt_packages "${BASE_PACKAGES[@]}"
    ensure_venv
    export CFPS_ENV_FILE=/dev/null DJANGO_SETTINGS_MODULE=portal.settings.test
    unset DATABASE_URL
    ensure_secrets
    rc=0
    ruff check . && ruff format --check . && lint-imports --no-cache && python manage.py makemigrations --check --dry-run \
        && python -m pytest -n 2 -m "not live" "$@" || rc=$?
    [[ $rc -eq 0 ]] && echo "test.sh --fast: all passed (the live tests did not run: ./test.sh runs everything)"
    exit $rc
fi

ensure_apt_packages "${BASE_PACKAGES[@]}" mariadb-server mariadb-client chromium fonts-noto-cjk
# The real tools that check the generated deploy files (tests/deploy): nginx -t and a live nginx on 127.0.0.1,
# iptables-restore (and iproute2 for a private network namespace), systemd-analyze, openssl for a test certificate.
ensure_apt_packages nginx iptables iproute2 systemd openssl
# The users' containers (tests/docker): the Docker engine (Debian's, unless one is installed: docker-ce
# conflicts with docker.io), and debootstrap for the offline image build.
command -v dockerd >/dev/null 2>&1 || ensure_apt_packages docker.io
ensure_apt_packages debootstrap
# Hand-ins downloaded as one zip are opened by Debian's unzip too (tests/course), as a teacher's unzip would.
ensure_apt_packages unzip
# The docs' diagrams (docs/, sphinx.ext.graphviz draws them with dot).
ensure_apt_packages graphviz
ensure_venv
ensure_node
ensure_node_modules
# Notebooks (tests/dataset): the chart libraries from npm, and IPython's kernel config in .venv.
ensure_notebook_env

# Tests never read a developer's .env, nor a DATABASE_URL from the calling shell.
export CFPS_ENV_FILE=/dev/null
export DJANGO_SETTINGS_MODULE=portal.settings.test
unset DATABASE_URL
# The secrets the settings read from var/secrets/ (they never generate one on import).
ensure_secrets

# The MariaDB URL for the second pytest run; empty when MariaDB cannot be used.
mariadb_test_url() {
    # Root over TCP without a password, as on CI machines and most developer set-ups.
    if mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        echo "mysql://root@127.0.0.1:3306/cfps_portal"
        return 0
    fi
    # A stock Debian install lets root in only through the Unix socket: use a local test account instead.
    can_be_root || return 1
    say "MariaDB root has no password-less TCP login; using the local account cfps_test" >&2
    as_root mariadb -uroot >/dev/null <<'SQL' || return 1
CREATE USER IF NOT EXISTS 'cfps_test'@'localhost' IDENTIFIED BY 'cfps_test';
CREATE USER IF NOT EXISTS 'cfps_test'@'127.0.0.1' IDENTIFIED BY 'cfps_test';
GRANT ALL PRIVILEGES ON `cfps\_portal`.* TO 'cfps_test'@'localhost', 'cfps_test'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `test\_cfps\_portal%`.* TO 'cfps_test'@'localhost', 'cfps_test'@'127.0.0.1';
SQL
    echo "mysql://cfps_test:cfps_test@127.0.0.1:3306/cfps_portal"
}

mariadb_url=""
if ensure_mariadb_running && mariadb_url=$(mariadb_test_url); then
    :
elif [[ "${CI:-}" == "true" ]]; then
    die "MariaDB on 127.0.0.1:3306 cannot be used; the MariaDB test run is required in CI"
else
    mariadb_url=""
    warn "MariaDB on 127.0.0.1:3306 cannot be used; the MariaDB test run will be SKIPPED"
fi

failed=()
# step NAME CMD...: run one check, remember it if it fails, and go on with the next one.
step() {
    local name=$1 rc=0 started=$SECONDS
    shift
    printf '\n== %s ==\n' "$name"
    "$@" || rc=$?
    printf '== %s: %d s ==\n' "$name" $((SECONDS - started))
    if [[ $rc -ne 0 ]]; then
        # pytest's exit code 5 means it collected no test: that is a failure too.
        [[ $rc -eq 5 && "$name" == "tests on"* ]] && name="$name (no tests ran)"
        failed+=("$name (exit $rc)")
    fi
    return 0
}

step "ruff check" ruff check .
step "ruff format" ruff format --check .
step "import contracts" lint-imports --no-cache
step "migrations are up to date" python manage.py makemigrations --check --dry-run
step "compilemessages" python manage.py compilemessages --ignore=.venv --ignore=node_modules --ignore=var
# The docs, with warnings as errors and every reference checked (-n): a broken link or an unknown key fails.
step "docs build" python -m sphinx -W --keep-going -n -q -b html docs var/docs-html
# The notebook image, built here (its progress shows; minutes the first time, a second when nothing changed)
# so that tests/docker finds it. Without Docker those tests are skipped, except in CI where that fails.
if ensure_docker_running; then
    step "notebook image (build_image)" python manage.py build_image
elif [[ "${CI:-}" == "true" ]]; then
    failed+=("the Docker engine (required in CI)")
else
    warn "the Docker engine cannot be used; the container tests (tests/docker) will be SKIPPED"
fi
# The durations show which tests to make faster next (docs/development.md).
step "tests on SQLite" python -m pytest "${parallel[@]}" -m "not serial" --durations=25 "$@"
# Alone: these join the machine's Docker engine to a swarm for a while. With a -k or a file that selects none of
# them, pytest's "no tests ran" (exit 5) is no failure here.
serial_tests() {
    local rc=0
    python -m pytest -m serial "$@" || rc=$?
    [[ $rc -eq 5 && $# -gt 0 ]] && return 0
    return $rc
}
# They wait on the engine more than they work, so the MariaDB pass (no engine, no process of its own) runs
# beside them; their output follows it.
serial_log=$(mktemp)
serial_started=$SECONDS
serial_tests "$@" >"$serial_log" 2>&1 &
serial_pid=$!
if [[ -n "$mariadb_url" ]]; then
    step "tests on MariaDB" env DATABASE_URL="$mariadb_url" python -m pytest "${cpu_parallel[@]}" "$@"
else
    printf '\n== tests on MariaDB ==\nSKIPPED: MariaDB is not reachable\n'
fi
serial_rc=0
wait "$serial_pid" || serial_rc=$?
printf '\n== tests on SQLite, alone on the Docker engine (beside the MariaDB pass) ==\n'
cat "$serial_log"
rm -f "$serial_log"
printf '== tests on SQLite, alone on the Docker engine: %d s ==\n' $((SECONDS - serial_started))
[[ $serial_rc -ne 0 ]] && failed+=("tests on SQLite, alone on the Docker engine (exit $serial_rc)")

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'test.sh: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
if [[ -z "$mariadb_url" ]]; then
    echo "test.sh: all steps passed, but the MariaDB run was skipped"
else
    echo "test.sh: all steps passed"
fi
