"""Shared fixtures. Tests run against the database DATABASE_URL names: SQLite by default, MariaDB when
./test.sh sets it. Nothing is mocked; in CI a missing service is a failure, never a skip."""

import os
import shutil
from pathlib import Path

import pytest
from django.core.cache import cache

from tests.live import in_ci

# One set of browser fixtures for every folder (see tests/browser_plugin.py for why only one).
pytest_plugins = ["tests.browser_plugin"]

PASSWORD = "Cfps-analysis-2026"


# Tests that start their own portal/hub processes, each with its own SQLite (tests/dataset: their own scratch
# databases on MariaDB, whichever database the suite runs on; tests/docs: a Sphinx build, no database at all).
LIVE_DIRS = ("e2e", "browser", "docker", "deploy", "dataset", "ops", "docs")


def on_mariadb() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("mysql", "mariadb"))


def pytest_report_header(config):
    header = f"portal database: {'MariaDB/MySQL' if on_mariadb() else 'SQLite'}"
    if on_mariadb():
        header += f" (tests/{{{','.join(LIVE_DIRS)}}} run in the SQLite pass: their processes never use this database)"
    return header


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failed one, whatever skipped it: a missing service must never pass silently."""
    report = yield
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true, so this skip is a failure: {reason}"
    return report


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_session(tmp_path_factory):
    """Every process the tests start (portals, hubs, proxies, cullers, users' servers, kernels, Nginx) works
    in or names this session's temporary folder; when the session ends none of them may still run. What is
    left is listed, killed, and fails the session."""
    yield
    import time

    base = str(tmp_path_factory.getbasetemp())
    deadline = time.monotonic() + 15  # a hub stopping its servers may need a moment
    while (left := leftover_processes(base)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid, _ in left:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not left, "processes started by the tests were still running at the end:\n" + "\n".join(
        f"  {pid} {cmdline}" for pid, cmdline in left
    )


def leftover_processes(folder: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process other than this one whose working folder is in `folder` or whose
    environment names it."""
    folder = folder.rstrip("/") + "/"  # pytest-1/ is not pytest-12/
    marker = folder.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat") as fh:
                zombie = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue  # gone meanwhile, or a kernel thread
        if not zombie and ((cwd + "/").startswith(folder) or marker in environ):
            found.append((int(entry), cmdline[:160]))
    return found


# Markers, put on by where a test lives and what it uses (pyproject.toml describes each):
# - live: starts processes of its own (a portal, a hub, Nginx, a browser, containers); `./test.sh --fast` runs
#   everything else (`-m "not live"`);
# - docker: needs the Docker engine; browser: drives Chromium; mariadb: a MariaDB server (the machine's, or one
#   it starts), or the whole run is on MariaDB; root: needs root (iptables, network namespaces,
#   an engine or a database server of its own, files given to another owner);
# - serial: changes the machine's Docker engine for everyone (it joins a swarm), so ./test.sh runs it after the
#   parallel pass, alone.
SERIAL = ("tests/docker/test_swarm.py", "tests/docker/test_course_swarm.py")
ROOT = ("tests/deploy/test_firewall.py", "tests/ops/", "tests/course/test_merge_rules.py")
MARIADB = ("tests/dataset/", "tests/ops/test_backup_mariadb.py", "tests/ops/test_faults.py")  # a MariaDB server
DOCKER_FIXTURES = {"docker_client", "notebook_image", "own_docker_engine"}
BROWSER_FIXTURES = {"browser", "page", "phone_page", "new_context"}
TESTS = Path(__file__).resolve().parent


def markers_of(item) -> set[str]:
    where = "tests/" + item.path.resolve().relative_to(TESTS).as_posix()
    fixtures = set(getattr(item, "fixturenames", ()))
    marks = set()
    if item.path.parent.name in LIVE_DIRS:
        marks.add("live")
    if where.startswith("tests/docker/") or fixtures & DOCKER_FIXTURES:
        marks |= {"live", "docker"}
    if where.startswith("tests/browser/") or item.path.stem.endswith("_browser") or fixtures & BROWSER_FIXTURES:
        marks |= {"live", "browser"}
    if where.startswith(ROOT):
        marks.add("root")
    if where.startswith(MARIADB) or on_mariadb():
        marks.add("mariadb")
    if where in SERIAL:
        marks |= {"serial", "docker", "root"}
    return marks


# The live folders first in a run of one process. ./test.sh's parallel workers (pytest-xdist) take the work units
# (`work_unit`) with the most tests first, which mixes the live files with the unit tests' large files. Measured on
# 2 cores: sending all live files first left four workers' hubs and browsers on two cores at once, slower.
FIRST = ("ops", "docker", "e2e", "browser", "dataset", "deploy", "docs")


def _rank(item) -> int:
    folder = item.path.parent.name
    return FIRST.index(folder) if folder in FIRST else len(FIRST)


def work_unit(nodeid: str) -> str:
    """What one parallel worker runs together (./test.sh: `--dist loadfile`, with the scheduler below): a whole
    file, so that its module fixtures start once, except the tests on tests/e2e's shared stacks (the session
    fixture `stack`, whose parameter is the first part of the test's id), which go by proxy. By file, a worker
    started a python and a node stack again for every e2e file it took (the parameter changed twice a file); by
    proxy, one worker runs every test on the python stack and another every test on the node stack, each stack
    started once. Works from the test's id alone: the scheduler sees no more."""
    path, _, name = nodeid.partition("::")
    if path.startswith("tests/e2e/") and name.endswith("]"):
        first = name[name.rindex("[") + 1 : -1].split("-")[0]
        if first in STACK_PROXIES:
            return f"e2e-stack-{first}"
    return path


STACK_PROXIES = ("python", "node")  # tests/e2e/conftest.py `stack`


class _WorkUnits:
    """Hands `--dist loadfile` the units of `work_unit` (pytest-xdist's own `--dist loadgroup` cannot: it marks a
    group in the test's id, which pytest 9 no longer lets it change)."""

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        if config.getoption("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class WorkUnitScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return WorkUnitScheduling(config, log)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_WorkUnits(), "cfps-work-units")


def pytest_collection_modifyitems(config, items):
    """Put on the markers above, the live folders first; on MariaDB leave out the live tests: their processes
    always use their own SQLite, so a MariaDB pass would only repeat them."""
    for item in items:
        for name in sorted(markers_of(item)):
            item.add_marker(name)
        callspec = getattr(item, "callspec", None)
        on_stack = callspec is not None and item.path.parent.name == "e2e" and "stack" in callspec.params
        if on_stack != work_unit(item.nodeid).startswith("e2e-stack-"):  # the id rule must match the fixture
            raise pytest.UsageError(f"{item.nodeid}: work_unit() mistakes whether it runs on the shared stack")
    items.sort(key=_rank)
    if not on_mariadb():
        return
    live = [item for item in items if item.path.parent.name in LIVE_DIRS]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if item not in live]


@pytest.fixture(scope="session")
def _generated_secrets(tmp_path_factory) -> Path:
    """One run of the secrets step (`python -m portal.config prepare`) for the session, with nothing from .env."""
    from portal.config.env import Env, generate_secrets

    var = tmp_path_factory.mktemp("secrets-template")
    generate_secrets(var_dir=var, env=Env({}))
    return var / "secrets"


@pytest.fixture
def private_var_dir(tmp_path, monkeypatch, _generated_secrets) -> Path:
    """CFPS_VAR_DIR is tmp_path/var, holding the secrets the explicit step makes before the settings or the hub's
    config read them (copied, modes and all, from the session's one run: an RSA key per test costs seconds)."""
    var = tmp_path / "var"
    shutil.copytree(_generated_secrets, var / "secrets")
    monkeypatch.setenv("CFPS_VAR_DIR", str(var))
    return var


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; every test starts with a clean slate."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_invite(db):
    from accounts.models import InviteCode

    def make(**fields):
        return InviteCode.objects.create(**fields)

    return make


@pytest.fixture
def invite(make_invite):
    return make_invite(code="CLASS-2026", max_uses=5)


@pytest.fixture
def signup_data(invite):
    def data(username="student1", **overrides):
        return {
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "invite_code": invite.code,
            **overrides,
        }

    return data


@pytest.fixture
def student(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="student9", password=PASSWORD)


@pytest.fixture
def staff(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser(username="teacher", password=PASSWORD)


@pytest.fixture
def staff_roles(db):
    """The two role groups as `bootstrap` makes them (accounts.roles), by key: {"teacher": Group, "ta": Group}."""
    from accounts import roles
    from accounts.models import StaffRole

    roles.ensure_roles()
    return {marker.key: marker.group for marker in StaffRole.objects.select_related("group")}


@pytest.fixture
def make_staff(staff_roles):
    """make_staff("wang", "teacher"): a staff account (is_staff, not superuser) holding that role."""
    from django.contrib.auth import get_user_model

    def make(username, role):
        user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
        user.groups.add(staff_roles[role])
        return user

    return make
