"""Warm-up benchmarks (issue 23): servers started before the class clicks, on the real stack with the Docker spawner.

    .venv/bin/python tests/bench/warm.py                      # N=200 students, arrivals over 120 s
    .venv/bin/python tests/bench/warm.py --students 40 --sweep
    .venv/bin/python tests/bench/warm.py --only cold          # one phase (warm, login, cold; repeatable)

Not a test: one line per figure. What it measures, on the real stack (SPAWNER=docker, host network, the course
worker run as `manage.py course_worker --until-idle`, as the worker does it; the login and cold phases each on a
stack of their own, as said below):

- sweep (`--sweep`): a warm-up of 10 servers at WARMUP_CONCURRENCY 1, 2, 4 and 8, the job's own start to end
  (median of `--rounds`); the figures behind WARMUP_CONCURRENCY's default;
- warm-up: N students of one group warmed from nothing (no hub user yet) at the configured concurrency: wall
  time, servers a minute, and so the largest class this machine warms within 5 minutes;
- memory: an idle warmed server's RSS (docker stats, median of 5), the machine's used memory with N warmed
  (MemTotal - MemAvailable) against before;
- warm: each of the N students, already logged in to the portal (not timed), clicks 打开 JupyterLab: the time
  from the click (the hub's login URL, through the OAuth round trip, to the server's own login) to JupyterLab's
  page, and then its API answering; arrivals on a fixed schedule, one every `--arrival-seconds`/N seconds;
  p50/p95/max; goal p95 <= 1 s. The CPU of those clicks, split portal / hub / proxy, per click (the hub's
  login without a hash, the server's own OAuth login, the lab page and its API);
- login: the issue's login figure, on a stack of its own with START_SERVER_AT_LOGIN off (a login then only
  logs in): N full logins, password at the portal and then the hub's OAuth login, with the hub users made
  beforehand, 20 at once (`--login-concurrency`); CPU per login beyond the password hash, split portal /
  hub / proxy (goal <= 40 ms), and the burst against `cores / CPU of one hash` (goal >= 0.8x); the figures
  of classday.login_burst;
- cold: N other students' first starts (hub users made beforehand, servers started through the hub's API and
  awaited on its progress stream, then /api through the proxy) against N bare `docker run`s of the same image
  with the same limits, each on the same arrival schedule; p50/p95 and the ratio of the p95s (goal <= 1.3),
  medians of `--cold-rounds` rounds (3); and the CPU a start uses, of the whole machine and split into the
  servers, the Docker engine, hub, proxy and portal.

Everything talks to 127.0.0.1 / localhost only; containers use the host network.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench import classday  # noqa: E402
from tests.bench.classday import CpuMeter, bulk_users, percentile, say  # noqa: E402
from tests.e2e import flows  # noqa: E402
from tests.live import free_port  # noqa: E402

RUN = secrets.token_hex(3)
MB = 1024**2


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    return out


def used_mb() -> float:
    info = meminfo()
    return (info["MemTotal"] - info["MemAvailable"]) / MB


def on_schedule(work, items: list, spread: float) -> list:
    """`work(item)` for each item, item i starting at i * spread / len(items) seconds (a fixed schedule)."""
    started = time.perf_counter()
    step = spread / max(len(items), 1)
    results: list = [None] * len(items)

    def one(i: int):
        delay = started + i * step - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        results[i] = work(items[i])

    with ThreadPoolExecutor(max_workers=min(len(items), 256) or 1) as pool:
        list(pool.map(one, range(len(items))))
    return results


DOCKER_CGROUP = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1, cgroupfs: every container's CPU
ENGINE = ("dockerd", "containerd")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (/proc/stat: everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / classday.CLK_TCK


class StartMeter:
    """CPU of a phase of starts, per start: the whole machine; the stack's roles (classday.roles); the Docker
    engine (dockerd, containerd; not the per-container shims, which end with their containers); and the
    containers themselves (their cgroups' total: each server's own start). Where a cold start's CPU beyond a
    bare one goes."""

    def __init__(self, stack=None):
        self.stack = stack

    def _now(self) -> dict[str, float]:
        engine = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _comm(e) in ENGINE]
        now = {"machine": machine_busy(), "engine": classday.cpu_seconds(engine)}
        if DOCKER_CGROUP.exists():
            now["servers"] = int(DOCKER_CGROUP.read_text()) / 1e9
        if self.stack is not None:
            now |= {role: classday.cpu_seconds(pids) for role, pids in classday.roles(self.stack).items()}
        return now

    def start(self):
        self.before = self._now()
        return self

    def stop(self, count: int) -> dict[str, float]:
        """Milliseconds per start of each figure."""
        return {key: (cpu - self.before.get(key, 0)) / max(count, 1) * 1000 for key, cpu in self._now().items()}


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def cpu_line(per: dict[str, float], keys: tuple[str, ...]) -> str:
    return f"{per['machine']:.0f} ms: " + ", ".join(f"{key} {per[key]:.0f}" for key in keys if key in per)


def figures(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s, max {max(values):.2f} s"


# --- the stack's side ----------------------------------------------------------------------------------
def shell(stack, script: str) -> str:
    return stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def put_in_group(stack, names: list[str], group: str) -> None:
    shell(
        stack,
        "from django.contrib.auth.models import Group\nfrom accounts.models import User\n"
        f"g = Group.objects.get_or_create(name={group!r})[0]\n"
        f"g.user_set.add(*User.objects.filter(username__in={names!r}))\nprint('ok')",
    )


def warm_up(stack, group: str, concurrency: int) -> tuple[float, dict]:
    """Queue a warm-up of `group` and run the worker until it is done; (the job's seconds, its counts)."""
    job = shell(
        stack,
        "from django.contrib.auth.models import Group\nfrom course import warmup\n"
        f"print(warmup.warm_up(Group.objects.get(name={group!r})).pk)",
    )
    env = {**stack.env, "WARMUP_CONCURRENCY": str(concurrency)}
    subprocess.run(
        [sys.executable, "manage.py", "course_worker", "--until-idle", "--verbosity", "0"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=3600,
    )  # fmt: skip
    out = shell(
        stack,
        "import json\nfrom course.models import Job\n"
        f"j = Job.objects.get(pk={job})\n"
        "print(json.dumps([(j.finished_at - j.started_at).total_seconds(), j.progress(), j.message]))",
    )
    seconds, counts, message = json.loads(out)
    if counts.get("failed") or message:
        say("warm-up: problems", f"{counts} {message}")
    return seconds, counts


def stop_all(stack, names: list[str]) -> None:
    token = stack.hub_admin_token()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda n: httpx.delete(f"{stack.hub_api_url}/users/{n}/server",
                                       headers={"Authorization": f"token {token}"}, trust_env=False, timeout=120),
                names,
            )
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not classday._docker("ps", "-q", "--filter", f"name=jupyter-w{RUN}", check=False):
            return
        time.sleep(1)


# --- the students' side --------------------------------------------------------------------------------
def click(stack, client: httpx.Client, name: str) -> float:
    """打开 JupyterLab, for a student logged in to the portal: until the lab page and its API answer."""
    started = time.perf_counter()
    response = client.get("/jupyter/hub/login")
    if not str(response.url).endswith(f"/jupyter/user/{name}/lab") or response.status_code != 200:
        flows.wait_for_lab(stack, client, name, response)  # not warm after all: the spawn page
    api = client.get(f"/jupyter/user/{name}/api/status")
    if api.status_code != 200:
        raise RuntimeError(f"{name}: /api/status {api.status_code}")
    return time.perf_counter() - started


def cold_start(stack, client: httpx.Client, token: str, name: str) -> float:
    """A first start through the hub's API (`client`: one kept open for every start, as the bare starts' docker
    CLI makes no client of ours), until its progress stream says ready and its /api answers through the proxy."""
    started = time.perf_counter()
    response = client.post(f"{stack.hub_api_url}/users/{name}/server", headers={"Authorization": f"token {token}"},
                           timeout=300)  # fmt: skip
    if response.status_code not in (201, 202):
        raise RuntimeError(f"spawn of {name}: HTTP {response.status_code} {response.text[:300]}")
    classday._wait_ready(stack, name, token, timeout=600, client=client)
    classday._wait_api(stack.url(f"/jupyter/user/{name}/api"), timeout=600)
    return time.perf_counter() - started


def bare_start(image: str, mem: str, cpus: str, name: str) -> float:
    from hubconfig.docker import WITHOUT_IRI_GRAMMAR

    port = free_port()
    started = time.perf_counter()
    lab = ["python", "-c", f"{WITHOUT_IRI_GRAMMAR}; from jupyterlab.labapp import main; sys.exit(main())"]
    classday._docker("run", "-d", "--rm", "--name", name, "--network", "host", "--memory", mem, "--cpus", cpus,
                     image, *lab, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                     "--IdentityProvider.token=", "--ServerApp.password=")  # fmt: skip
    classday._wait_api(f"http://127.0.0.1:{port}/api", timeout=600)
    return time.perf_counter() - started


# --- the benchmark -------------------------------------------------------------------------------------
def warm_phase(stack, args, concurrency: int) -> None:
    """The warm-up of N from nothing, memory, and the N students' clicks on warmed servers."""
    n = args.students
    names = bulk_users(stack, f"w{RUN}c", n, sep="u")
    put_in_group(stack, names, f"class-{RUN}")
    before = used_mb()
    seconds, counts = warm_up(stack, f"class-{RUN}", concurrency)
    say(f"warm-up: {n} servers from nothing at concurrency {concurrency}", f"{seconds:.1f} s "
        f"({counts.get('done', 0)} started, {counts.get('failed', 0)} failed)")  # fmt: skip
    rate = counts.get("done", 0) / seconds * 60 if seconds else 0
    say("warm-up: servers a minute; largest class warmed within 5 min", f"{rate:.0f}; {int(rate * 5)}")
    time.sleep(10)
    sizes = [mb for name in names[:5] if (mb := classday._container_mb(f"jupyter-{name}")) is not None]
    if sizes:
        say("memory: one idle warmed server (docker stats, median of 5)", f"{statistics.median(sizes):.0f} MB"
            " (goal <= 75 MB)")  # fmt: skip
    after = used_mb()
    say(f"memory: machine used, before / with {n} warmed", f"{before:.0f} MB / {after:.0f} MB "
        f"(+{(after - before) / max(n, 1):.0f} MB a server)")  # fmt: skip

    clients = {}

    def portal_login(name: str) -> None:
        client = flows.new_client(stack)
        flows.portal_login(stack, client, name)
        clients[name] = client

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(portal_login, names))
    meter = CpuMeter(stack).start()
    latencies = on_schedule(lambda name: click(stack, clients[name], name), names, args.arrival_seconds)
    cpu = meter.stop()
    for client in clients.values():
        client.close()
    say(f"warm: click to JupyterLab's page and API, {n} students", figures(latencies) + " (goal p95 <= 1 s)")
    per = {role: cpu.get(role, 0) / n * 1000 for role in ("portal", "hub", "proxy")}
    say(
        "warm: CPU per click (hub login, the server's own login, lab page and API; no hash)",
        f"{sum(per.values()):.0f} ms (portal {per['portal']:.0f}, hub {per['hub']:.0f}, proxy {per['proxy']:.0f})",
    )
    stop_all(stack, names)


def cold_phase(tmp: Path, env: dict[str, str], args, image: str, cpus: str) -> None:
    """N first starts through the hub against N bare `docker run`s, on the same arrival schedule, on a stack of
    its own: both with MEM_LIMIT `--cold-mem` (512M), not the warm-up's fit. No memory check stands before these
    starts, and a server near its limit while it starts (about 75 MB at 92M) reclaims its own page cache and
    reads its files again and again: at 92M, 200 starts in two minutes had a p95 of 27 s (2026-12-06).

    `--cold-rounds` rounds, each the hub's N and then the bare N (new students each round): one round's p95
    moved from 1.1 to 1.7 s between two runs of the same code on this shared machine, so the figures are the
    medians of the rounds' p50, p95 and ratio; every round is printed too."""
    n = args.students
    volumes = {key: f"{env[key]}-cold" for key in ("DOCKER_DATA_VOLUME", "DOCKER_TEAM_VOLUME")}  # its own data folder
    stack = classday.new_stack(tmp / "cold", "python", {**env, **volumes, "MEM_LIMIT": args.cold_mem})
    stack.manage("setup_volumes")
    rounds = []
    with stack:
        for number in range(1, args.cold_rounds + 1):
            hub_times, bare_times, hub_cpu, bare_cpu = cold_starts(stack, n, args, image, cpus, number)
            ratio = percentile(hub_times, 95) / percentile(bare_times, 95)
            say(f"cold: round {number}: hub / bare", f"{figures(hub_times)} / {figures(bare_times)}: {ratio:.2f}x")
            rounds.append((hub_times, bare_times, hub_cpu, bare_cpu, ratio))

    def median(pick) -> float:
        return statistics.median(pick(r) for r in rounds)

    def medians(i: int) -> str:
        return f"p50 {median(lambda r: percentile(r[i], 50)):.2f} s, p95 {median(lambda r: percentile(r[i], 95)):.2f} s"

    of = f"median of {len(rounds)} rounds"
    say(f"cold: {n} first starts through the hub (MEM_LIMIT {args.cold_mem}), {of}", medians(0))
    say(f"cold: {n} bare docker runs, same arrivals and limit, {of}", medians(1))
    say(f"cold: p95 hub / bare, {of}", f"{median(lambda r: r[4]):.2f}x (goal <= 1.3)")
    cpu = [{key: statistics.median(r[i].get(key, 0) for r in rounds) for key in rounds[0][i]} for i in (2, 3)]
    say("cold: CPU a start through the hub (machine: ...)", cpu_line(cpu[0], ("servers", "engine", "hub", "proxy",
                                                                                "portal")))  # fmt: skip
    say("cold: CPU a bare start (machine: ...)", cpu_line(cpu[1], ("servers", "engine")))


def cold_starts(stack, n: int, args, image: str, cpus: str, number: int):
    """One round: (hub times, bare times, hub CPU, bare CPU), with students and containers of its own."""
    cold = bulk_users(stack, f"w{RUN}k{number}", n, sep="u")
    classday.make_hub_users(stack, cold)
    token = stack.hub_admin_token()
    with httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=None)) as client:
        meter = StartMeter(stack).start()
        hub_times = on_schedule(lambda name: cold_start(stack, client, token, name), cold, args.arrival_seconds)
        hub_cpu = meter.stop(n)
    stop_all(stack, cold)
    bare_names = [f"cfps-bench-{RUN}-bare{number}-{i}" for i in range(n)]
    try:
        meter = StartMeter().start()
        bare_times = on_schedule(lambda name: bare_start(image, args.cold_mem, cpus, name), bare_names,
                                 args.arrival_seconds)  # fmt: skip
        bare_cpu = meter.stop(n)
    finally:
        classday._docker("rm", "-f", *bare_names, check=False)
    return hub_times, bare_times, hub_cpu, bare_cpu


def login_phase(tmp: Path, env: dict[str, str], args) -> None:
    """The issue's login figure: N full logins (password at the portal, then the hub's OAuth login) with the hub
    users made beforehand, on a stack of its own with START_SERVER_AT_LOGIN off, so that a login only logs in
    (a start's CPU is the warm-up's and the cold starts' figure). classday.login_burst: CPU beyond the hash split
    portal / hub / proxy, and the burst against the hash-bound limit `cores / CPU of one hash`."""
    stack = classday.new_stack(tmp / "login", "python", {**env, "START_SERVER_AT_LOGIN": "false"})
    with stack:
        hash_seconds = classday.hash_cpu_seconds()
        figures_ = classday.login_burst(
            stack, args.students, args.login_concurrency, hash_seconds, hub_users_first=True
        )
    beyond = figures_["beyond"]
    say(
        "login: CPU of a first hub login beyond the hash, hub user made beforehand",
        f"{sum(beyond.values()) * 1000:.0f} ms (goal <= 40 ms); burst {figures_['rate'] / figures_['limit']:.2f}x "
        "of cores / hash (goal >= 0.8)",
    )


PHASES = ("warm", "login", "cold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200, help="N students warmed, and N cold starts (200)")
    parser.add_argument("--arrival-seconds", type=float, default=120, help="arrivals spread over this (120)")
    parser.add_argument("--concurrency", type=int, default=None, help="WARMUP_CONCURRENCY (the table's default)")
    parser.add_argument("--sweep", action="store_true", help="also 10 servers at concurrency 1, 2, 4, 8")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the sweep (median)")
    parser.add_argument("--login-concurrency", type=int, default=20, help="logins at once in the login burst (20)")
    parser.add_argument(
        "--mem",
        help="MEM_LIMIT of the servers and the bare containers (default: 512M, or less so "
        "that N of them fit in 80%% of the available memory: the warm-up refuses more)",
    )
    parser.add_argument("--cold-mem", default="512M", help="MEM_LIMIT of the cold starts, hub's and bare (512M)")
    parser.add_argument("--cold-rounds", type=int, default=3, help="rounds of the cold starts (median; 3)")
    parser.add_argument("--only", action="append", choices=PHASES, help="run this phase (repeatable; default: all)")
    parser.add_argument("--no-cold", action="store_true", help="leave out the cold starts")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a .env key for the stack (DOCKER_IMAGE: also the bare containers' image)",
    )
    args = parser.parse_args()
    phases = set(args.only or PHASES) - ({"cold"} if args.no_cold else set())
    os.environ.setdefault("CFPS_ENV_FILE", "/dev/null")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    from portal.config.table import BY_NAME

    given = dict(item.split("=", 1) for item in args.env)
    image = given.get("DOCKER_IMAGE") or BY_NAME["DOCKER_IMAGE"].default_for("dev")  # the hub's and the bare ones'
    concurrency = args.concurrency or int(BY_NAME["WARMUP_CONCURRENCY"].default_for("dev"))
    cpus = "1.0"
    n = args.students
    fit = int(meminfo()["MemAvailable"] * 0.8 / max(n, 1) / MB)
    args.mem = args.mem or f"{min(512, fit)}M"
    env = {
        "SPAWNER": "docker",
        "DOCKER_NETWORK": "host",
        "DOCKER_IMAGE": image,
        "DOCKER_DATA_VOLUME": f"cfps-bench-{RUN}-data",
        "DOCKER_TEAM_VOLUME": f"cfps-bench-{RUN}-team",
        "MEM_LIMIT": args.mem,
        "CPU_LIMIT": cpus,
        "HUB_IDLE_TIMEOUT_SECONDS": "0",
        "HUB_CONCURRENT_SPAWN_LIMIT": "0",
        "HUB_ACTIVE_SERVER_LIMIT": "0",
        **given,
    }
    say("machine", f"{classday.CORES} cores, {meminfo()['MemTotal'] / 1024**3:.1f} GB, load {classday.load_average()}")
    say("warmed servers' memory limit (MEM_LIMIT)", args.mem)
    say("schedule", f"{n} arrivals, one every {args.arrival_seconds / n:.2f} s over {args.arrival_seconds:.0f} s")
    with tempfile.TemporaryDirectory(prefix="cfps-bench-warm-") as tmp:
        stack = classday.new_stack(Path(tmp), "python", env)
        stack.manage("setup_volumes")
        try:
            if "warm" in phases or args.sweep:
                stack.start()
            if args.sweep:
                sweep = bulk_users(stack, f"w{RUN}s", 10, sep="u")
                put_in_group(stack, sweep, f"sweep-{RUN}")
                for c in (1, 2, 4, 8):
                    times = []
                    for _ in range(args.rounds):
                        seconds, _counts = warm_up(stack, f"sweep-{RUN}", c)
                        times.append(seconds)
                        stop_all(stack, sweep)
                    say(f"sweep: warm-up of 10 servers at concurrency {c}", f"{statistics.median(times):.1f} s")
            if "warm" in phases:
                warm_phase(stack, args, concurrency)
        finally:
            stack.stop()
            left = classday._docker("ps", "-aq", "--filter", f"name={RUN}", check=False).split()
            if left:
                classday._docker("rm", "-f", *left, check=False)
        try:
            if "cold" in phases:
                cold_phase(Path(tmp), env, args, image, cpus)
            if "login" in phases:
                login_phase(Path(tmp), env, args)
        finally:
            volumes = classday._docker("volume", "ls", "-q", "--filter", f"name={RUN}", check=False).split()
            if volumes:
                classday._docker("volume", "rm", "-f", *volumes, check=False)


if __name__ == "__main__":
    threading.excepthook = lambda info: print(f"thread failed: {info.exc_value}", file=sys.stderr)
    main()
