"""Class-day benchmarks (issue 11): the real stack, measured the way a first lesson loads it.

Not tests: functions that print one line per figure. `run_all.py` runs them in order on one stack (and the
spawn benchmark on a second one with the Docker spawner); each can also be called alone from a shell.

- sign-up burst: N students, one address, one code, concurrency C; every one must end logged in;
- login burst: N full hub logins (hub -> portal authorize -> login -> token -> userinfo -> hub cookie) at
  concurrency C, against the hash-bound limit `cores / CPU-seconds of one PBKDF2 check`; CPU per login
  beyond the hash, split portal / hub / proxy (from /proc/<pid>/stat); p95 of /jupyter/hub/api and of a
  portal page, probed DURING the burst;
- spawn: one first start alone and M at once (Docker spawner, host network) against bare `docker run`s of
  the same image, time until JupyterLab's /api answers (for the hub's: once its progress stream, which the
  spawn page listens to, says ready);
- memory: RSS of portal + hub + proxy idle and after the bursts, and of one idle student server.

Two profiles: the embedded default as ./run.sh starts it (`new_stack`), and the production profile as a
campus deploys it (`prod_stack`: MariaDB, Redis, one gunicorn worker per core (at least 2), the Node proxy, Nginx with
TLS in front; tests/e2e/prodstack.py builds it, as for tests/e2e/test_prod_stack.py). Behind Nginx, its
processes are a role of their own in the CPU split and in memory.

The machine is shared and noisy: figures that depend on it are given as ratios against a baseline measured
in the same run (the hash-bound limit, bare containers), and repeated measurements are medians of rounds.
Everything talks to 127.0.0.1 / localhost only.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e import flows  # noqa: E402
from tests.live import GUNICORN_CONF, Stack, free_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1024**2
CORES = os.cpu_count() or 1
RUN = secrets.token_hex(3)


def say(name: str, value: str) -> None:
    """One figure per line: `name: value`, so the output is easy to grep and to paste."""
    print(f"{name:<58} {value}", flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- processes ----------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after the command name, from field 3 (state)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += tree.get(current, [])
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def roles(stack: Stack) -> dict[str, list[int]]:
    """The stack's processes: portal (gunicorn's master and every worker), hub (jupyterhub), proxy, other
    (culler...), and nginx (master and workers) when the stack is behind one."""
    found = {"portal": descendants(stack.portal.proc.pid), "hub": [], "proxy": [], "other": []}
    if (nginx := getattr(stack, "nginx", None)) is not None:
        found["nginx"] = descendants(nginx.proc.pid)
    for pid in descendants(stack.hub_proc.pid):
        line = cmdline(pid)
        if "configurable-http-proxy" in line or "pyproxy" in line:
            found["proxy"].append(pid)
        elif pid == stack.hub_proc.pid:
            found["hub"].append(pid)
        else:
            found["other"].append(pid)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU of the processes and of the children they have reaped: a gunicorn worker that ends (its CPU moves
    to the master's cutime) still counts, once."""
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLK_TCK


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[21])  # rss, in pages
    return total * PAGE_MB


class CpuMeter:
    """CPU seconds each role used between start() and stop(). The processes are looked up again at stop():
    a worker started in between (gunicorn replacing one) counts from its start."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def _now(self) -> dict[str, float]:
        return {role: cpu_seconds(pids) for role, pids in roles(self.stack).items()}

    def start(self):
        self.before = self._now()
        return self

    def stop(self) -> dict[str, float]:
        return {role: cpu - self.before.get(role, 0) for role, cpu in self._now().items()}


class Prober(threading.Thread):
    """GETs each URL in turn every `interval` seconds until stopped; keeps each URL's latencies (seconds)."""

    def __init__(self, urls: dict[str, str], interval: float = 0.1, verify=True):
        super().__init__(daemon=True)
        self.urls, self.interval, self.verify = urls, interval, verify
        self.latencies: dict[str, list[float]] = {name: [] for name in urls}
        self.errors = 0
        self._halt = threading.Event()

    def run(self):
        with httpx.Client(trust_env=False, timeout=30, verify=self.verify) as client:
            while not self._halt.is_set():
                for name, url in self.urls.items():
                    started = time.perf_counter()
                    try:
                        client.get(url).raise_for_status()
                        self.latencies[name].append(time.perf_counter() - started)
                    except httpx.HTTPError:
                        self.errors += 1
                self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(timeout=60)


# --- the stack ----------------------------------------------------------------------------------------
def embedded_default_portal(stack: Stack) -> None:
    """Start gunicorn exactly as ./run.sh does (deploy/gunicorn.conf.py's own workers and threads), not with
    the tests' fixed `-w 1 --threads 4`."""
    portal = stack.portal

    def command():
        return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-b", f"127.0.0.1:{portal.port}",
                "--no-control-socket", "portal.wsgi"]  # fmt: skip

    portal.gunicorn_command = command


def new_stack(tmp: Path, proxy: str, extra_env: dict[str, str] | None = None) -> Stack:
    """The embedded default's stack, not started yet (use it as a context manager); `extra_env` overrides
    .env keys (run_all.py --env KEY=VALUE), e.g. to compare GUNICORN_THREADS or PASSWORD_CHECKS_AT_ONCE."""
    stack = Stack(tmp, proxy=proxy, extra_env={"INVITE_CODES": flows.INVITE_CODE, **(extra_env or {})})
    embedded_default_portal(stack)
    return stack


# Redis database of the benchmark's prod stack: not 0 (a campus's own), not 11 (tests/e2e/test_prod_stack.py).
PROD_REDIS_URL = "redis://127.0.0.1:6379/13"


@contextmanager
def prod_stack(tmp: Path, extra_env: dict[str, str] | None = None):
    """The production profile behind Nginx with TLS (tests/e2e/prodstack.py), started, with the production
    defaults (`extra_env` overrides, as for new_stack) and Nginx's workers as Debian's nginx.conf has them;
    its Redis database is emptied before and after the run (that database only)."""
    import redis

    from tests.e2e.prodstack import prod_stack as build

    env = {"INVITE_CODES": flows.INVITE_CODE, **(extra_env or {})}
    own = redis.Redis.from_url(PROD_REDIS_URL, socket_connect_timeout=3)
    own.flushdb()
    try:
        with build(tmp, PROD_REDIS_URL, env, nginx_workers="auto") as site:
            yield site
    finally:
        own.flushdb()
        own.close()


def describe(stack: Stack) -> None:
    """The stack's process counts, so a figure can be read against them."""
    found = roles(stack)
    workers = len(found["portal"]) - 1
    nginx = f", nginx {len(found['nginx'])} processes (master, workers, cache)" if "nginx" in found else ""
    say("stack", f"gunicorn master + {workers} workers, {len(found['proxy'])} proxy process(es){nginx}")


def bulk_users(stack: Stack, prefix: str, count: int, sep: str = "-") -> list[str]:
    """`count` students with flows.PASSWORD, made with ONE real PBKDF2 hash (the bursts time logins, not this)."""
    names = [f"{prefix}{sep}{i:03d}" for i in range(count)]
    script = (
        "from django.contrib.auth.hashers import make_password\n"
        "from accounts.models import User\n"
        f"pw = make_password({flows.PASSWORD!r})\n"
        f"User.objects.bulk_create([User(username=n, password=pw) for n in {names!r}])\n"
    )
    stack.manage("shell", "-c", script)
    return names


def make_hub_users(stack: Stack, names: list[str]) -> None:
    """The hub users of `names` made as the product makes them before a first login (the portal's queued calls,
    accounts.hub): the portal's hub token may not create users through the REST API."""
    queue = f"from accounts import hub\nfor name in {names!r}:\n    hub.queue_sync(name, reason='benchmark')\n"
    stack.manage("shell", "-c", queue)  # the process ends once its background pass has carried them out
    left = stack.manage(
        "shell", "-c", "from accounts.models import PendingHubCall as P\n"
        f"print(list(P.objects.filter(username__in={names!r}).values_list('username', 'last_error')))\n",
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    if left != "[]":
        raise RuntimeError(f"hub users not made: {left[:300]}")


def hash_cpu_seconds(rounds: int = 5) -> float:
    """CPU-seconds of one password check with the portal's hasher (Django's PBKDF2-SHA256), median of rounds."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    iterations = PBKDF2PasswordHasher.iterations
    times = []
    for _ in range(rounds):
        started = time.process_time()
        hashlib.pbkdf2_hmac("sha256", flows.PASSWORD.encode(), b"somesaltvalue123", iterations)
        times.append(time.process_time() - started)
    return statistics.median(times)


def hash_baseline(threads: int = CORES, per_thread: int = 3) -> tuple[float, float]:
    """(password checks per second, CPU-seconds per check) measured RIGHT NOW with `threads` threads hashing:
    the hash-bound limit as this machine manages it at this moment (lower than cores / CPU of one check when
    other work shares the machine), and the cost of one check under the same contention as the burst."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    iterations = PBKDF2PasswordHasher.iterations

    def hash_some(_):
        started = time.thread_time()
        for _i in range(per_thread):
            hashlib.pbkdf2_hmac("sha256", flows.PASSWORD.encode(), b"somesaltvalue123", iterations)
        return (time.thread_time() - started) / per_thread

    wall, cpu = run_concurrently(hash_some, list(range(threads)), threads)
    return threads * per_thread / wall, statistics.median(cpu)


def _around(run):
    """Run `run()` between two hash baselines; returns (its result, mean rate, mean CPU per check)."""
    rate_before, cpu_before = hash_baseline()
    result = run()
    rate_after, cpu_after = hash_baseline()
    return result, (rate_before + rate_after) / 2, (cpu_before + cpu_after) / 2


def load_average() -> str:
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def split_at(items: list, index: int) -> tuple[list, list]:
    return items[:index], items[index:]


def run_concurrently(worker, items: list, concurrency: int) -> tuple[float, list]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(worker, items))
    return time.perf_counter() - started, results


def _probe_urls(stack: Stack) -> dict[str, str]:
    return {"hub api": stack.url("/jupyter/hub/api"), "portal page": stack.url("/accounts/login/")}


# --- benchmarks ---------------------------------------------------------------------------------------
def memory(stack: Stack, label: str) -> float:
    found = roles(stack)
    parts = {role: rss_mb(found[role]) for role in ("portal", "hub", "proxy")}
    total = sum(parts.values())
    split = ", ".join(f"{role} {value:.0f}" for role, value in parts.items())
    say(f"memory {label}: portal + hub + proxy RSS", f"{total:.0f} MB ({split})")
    if "nginx" in found:
        say(f"memory {label}: nginx RSS (master + workers)", f"{rss_mb(found['nginx']):.0f} MB")
    return total


def signup_burst(stack: Stack, students: int, concurrency: int) -> None:
    code = f"BENCH-{RUN}".upper()
    stack.manage("shell", "-c", f"from accounts.models import InviteCode; InviteCode.objects.create(code={code!r}, max_uses={students})")  # fmt: skip
    names = [f"su-{RUN}-{i:03d}" for i in range(students)]

    def one(name: str) -> bool:
        with flows.new_client(stack) as client:
            form = client.get("/accounts/signup/")
            data = {"username": name, "password1": flows.PASSWORD, "password2": flows.PASSWORD, "invite_code": code}
            done = flows.post_form(stack, client, form, data)
            if flows.logged_in_as(done.text) == name:
                return True
            failures.append(f"{done.status_code} {done.url}: {done.text[:120]!r}")
            return False

    failures: list[str] = []

    meter = CpuMeter(stack).start()
    (wall, results), measured, _ = _around(lambda: run_concurrently(one, names, concurrency))
    cpu = meter.stop()
    ok = sum(results)
    rate = students / wall
    say(f"sign-up burst: {students} students, one address, one code, c={concurrency}", f"{ok}/{students} succeeded")
    if failures:
        say("sign-up burst: first failure", failures[0])
    say("sign-up burst: wall time", f"{wall:.1f} s ({rate:.2f} sign-ups/s; {load_average()})")
    say(
        "sign-up burst: sign-ups/s vs hashes/s measured alongside",
        f"{rate:.2f} / {measured:.2f} = {rate / measured:.2f}x",
    )
    say("sign-up burst: portal CPU per sign-up", f"{cpu['portal'] / students * 1000:.0f} ms")


def login_burst(
    stack: Stack, students: int, concurrency: int, hash_seconds: float, hub_users_first: bool = False
) -> dict:
    """`hash_seconds`: CPU of one check on a quiet moment (for the limit); the split uses the cost measured
    alongside the burst, under the same contention. `hub_users_first`: the students' hub users are made
    before the burst (as sign-ups, roster imports and warm-ups make them), so a login only logs in."""
    workers = max(1, len(roles(stack)["portal"]) - 1)  # gunicorn's, without its master
    everyone = bulk_users(stack, f"li-{RUN}", 2 * workers + students)
    if hub_users_first:
        make_hub_users(stack, everyone)
    warm, names = split_at(everyone, 2 * workers)

    def one(name: str) -> bool:
        with flows.new_client(stack) as client:
            try:
                flows.hub_login(stack, client, name)
                return True
            except flows.FlowError as exc:
                login_failures.append(str(exc).splitlines()[0][:300])
                return False

    login_failures: list[str] = []

    # Warm-up: first requests compile templates and open DB connections in EVERY gunicorn worker (five in
    # prod, each paying it once): two logins per worker, as many at once as there are workers.
    run_concurrently(one, warm, workers)
    # Two halves: throughput and CPU without probes (their requests would count as login CPU), then the
    # latency probes during a second, identical burst.
    names, probed = split_at(names, students // 2)

    def burst():
        meter, client_started = CpuMeter(stack).start(), time.process_time()
        wall, results = run_concurrently(one, names, concurrency)
        return wall, results, {**meter.stop(), "client": time.process_time() - client_started}

    (wall, results, cpu), measured, hash_cpu = _around(burst)
    prober = Prober(_probe_urls(stack), verify=getattr(stack, "verify", True))
    prober.start()
    _, probed_results = run_concurrently(one, probed, concurrency)
    prober.stop()
    results += probed_results
    n = len(names)
    rate = n / wall
    limit = CORES / hash_seconds
    beyond = {
        "portal": (cpu["portal"] - n * hash_cpu) / n,
        "hub": cpu["hub"] / n,
        "proxy": cpu["proxy"] / n,
        **({"nginx": cpu["nginx"] / n} if "nginx" in cpu else {}),
    }
    say(f"login burst: {len(results)} full hub logins, c={concurrency}", f"{sum(results)}/{len(results)} succeeded")
    say("login burst: one PBKDF2 password check", f"{hash_seconds * 1000:.0f} ms CPU ({hash_cpu * 1000:.0f} alongside)")
    say(
        f"login burst: logins/s vs hash-bound limit ({CORES} cores / hash)",
        f"{rate:.2f} / {limit:.2f} = {rate / limit:.2f}x",
    )
    say(
        "login burst: logins/s vs hashes/s measured alongside",
        f"{rate:.2f} / {measured:.2f} = {rate / measured:.2f}x ({load_average()})",
    )
    split = ", ".join(f"{role} {value * 1000:.0f}" for role, value in beyond.items())
    say(
        "login burst: CPU per login beyond the hash",
        f"{sum(beyond.values()) * 1000:.0f} ms ({split}; other {cpu['other'] / n * 1000:.0f})",
    )
    # The students' browsers are this process, on the same cores: CPU the hash-bound limit does not leave them.
    say("login burst: this benchmark's own client CPU per login", f"{cpu['client'] / n * 1000:.0f} ms (same cores)")
    for name, values in prober.latencies.items():
        say(
            f"login burst: p95 of {name} during the burst",
            f"{percentile(values, 95) * 1000:.0f} ms ({len(values)} probes)",
        )
    if login_failures:
        say("login burst: first failure", login_failures[0])
    if prober.errors:
        say("login burst: probe errors", str(prober.errors))
    return {"rate": rate, "limit": limit, "beyond": beyond}


# --- spawn (Docker) -----------------------------------------------------------------------------------
def _docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def _wait_api(url: str, timeout: float = 180) -> float:
    """Seconds until `url` (a Jupyter server's /api) answers 200 with its version (a student's `*.localhost` host
    is reached on 127.0.0.1, as browsers do)."""
    started = time.perf_counter()
    transport = flows.BrowserTransport(http.cookiejar.CookieJar(), trust_env=False)
    with httpx.Client(trust_env=False, timeout=5, transport=transport) as client:
        while time.perf_counter() - started < timeout:
            try:
                response = client.get(url)
                if response.status_code == 200 and "version" in response.text:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _bare_starts(image: str, count: int, mem: str, cpus: str) -> float:
    """Wall time for `count` bare containers of the image, started at once, until each one's /api answers."""
    from hubconfig.docker import WITHOUT_IRI_GRAMMAR

    ports = [free_port() for _ in range(count)]
    names = [f"cfps-bench-{RUN}-bare-{i}-{secrets.token_hex(2)}" for i in range(count)]

    def one(i: int) -> float:
        started = time.perf_counter()
        # `jupyter lab`, with Python started as the hub starts the students' servers (hubconfig/docker.py).
        lab = ["python", "-c", f"{WITHOUT_IRI_GRAMMAR}; from jupyterlab.labapp import main; sys.exit(main())"]
        _docker("run", "-d", "--rm", "--name", names[i], "--network", "host", "--memory", mem, "--cpus", cpus,
                image, *lab, "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={ports[i]}", "--IdentityProvider.token=", "--ServerApp.password=")  # fmt: skip
        _wait_api(f"http://127.0.0.1:{ports[i]}/api")
        return time.perf_counter() - started

    try:
        wall, _ = run_concurrently(one, list(range(count)), count)
    finally:
        _docker("rm", "-f", *names, check=False)
    return wall


def _wait_ready(stack: Stack, name: str, token: str, timeout: float = 180, client: httpx.Client | None = None) -> None:
    """Until the hub says `name`'s server is ready, learnt as the spawn page learns it: from the progress event
    stream, one request. (Polling /jupyter/user/<name>/api meanwhile had the hub answer every poll for a
    server not yet routed, ~4000 redirects for 10 servers: hub and proxy CPU that bare starts never pay,
    since nothing answers on a bare container's port before it is up.) `client`: a client kept open, as a
    browser keeps its connections (a new one costs this process an SSL context, on the same cores)."""
    url = f"{stack.hub_api_url}/users/{name}/server/progress"
    headers = {"Authorization": f"token {token}", "Accept": "text/event-stream"}
    request = (client or httpx).stream
    with request("GET", url, headers=headers, timeout=timeout, **({} if client else {"trust_env": False})) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[len("data:") :])
                if event.get("failed"):
                    raise RuntimeError(f"spawn of {name} failed: {event.get('message')}")
                if event.get("ready"):
                    return
    raise RuntimeError(f"the progress stream of {name} ended before the server was ready")


def _hub_spawns(stack: Stack, names: list[str]) -> float:
    token = stack.hub_admin_token()

    def one(name: str) -> float:
        started = time.perf_counter()
        response = httpx.post(
            f"{stack.hub_api_url}/users/{name}/server",
            headers={"Authorization": f"token {token}"},
            trust_env=False,
            timeout=120,
        )
        if response.status_code not in (201, 202):
            raise RuntimeError(f"spawn of {name}: HTTP {response.status_code} {response.text[:300]}")
        _wait_ready(stack, name, token)
        _wait_api(stack.url(f"/jupyter/user/{name}/api"))  # and it answers through the proxy
        return time.perf_counter() - started

    wall, _ = run_concurrently(one, names, len(names))
    return wall


def spawn(tmp: Path, proxy: str, at_once: int, rounds: int, extra_env: dict[str, str] | None = None) -> None:
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        say("spawn", "skipped: no Docker engine")
        return
    from portal.config.table import BY_NAME

    image = (extra_env or {}).get("DOCKER_IMAGE", BY_NAME["DOCKER_IMAGE"].default_for("dev"))  # hub and bare alike
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        say("spawn", f"skipped: image {image} missing (python manage.py build_image)")
        return
    mem, cpus = "2G", "1.0"  # the shipped MEM_LIMIT / CPU_LIMIT
    env = {
        "SPAWNER": "docker",
        "DOCKER_NETWORK": "host",
        "DOCKER_IMAGE": image,
        "DOCKER_DATA_VOLUME": f"cfps-bench-{RUN}-data",
        "DOCKER_TEAM_VOLUME": f"cfps-bench-{RUN}-team",
        "MEM_LIMIT": mem,
        "CPU_LIMIT": cpus,
        "HUB_IDLE_TIMEOUT_SECONDS": "0",
        **(extra_env or {}),
    }
    stack = new_stack(tmp, proxy, env)
    stack.manage("setup_volumes")
    try:
        stack.start()
        alone_hub, alone_bare, many_hub, many_bare = [], [], [], []
        idle_mb = None
        for round_no in range(rounds):
            # Letters and digits only, so Docker's names for them are the names themselves (no escaping).
            batch = bulk_users(stack, f"sp{RUN}r{round_no}", at_once + 1, sep="u")
            for name in batch:  # hub users exist after a first login (not timed)
                with flows.new_client(stack) as client:
                    flows.hub_login(stack, client, name)
            alone_bare.append(_bare_starts(image, 1, mem, cpus))
            alone_hub.append(_hub_spawns(stack, batch[:1]))
            if idle_mb is None:
                time.sleep(5)
                idle_mb = _container_mb(f"jupyter-{batch[0]}")
            many_bare.append(_bare_starts(image, at_once, mem, cpus))
            many_hub.append(_hub_spawns(stack, batch[1:]))
            _stop_servers(stack, batch)
        a_hub, a_bare = statistics.median(alone_hub), statistics.median(alone_bare)
        m_hub, m_bare = statistics.median(many_hub), statistics.median(many_bare)
        say(
            "spawn: one first start alone, hub vs bare docker run",
            f"{a_hub:.1f} s / {a_bare:.1f} s = {a_hub / a_bare:.2f}x",
        )
        say(
            f"spawn: {at_once} first starts at once, hub vs bare",
            f"{m_hub:.1f} s / {m_bare:.1f} s = {m_hub / m_bare:.2f}x",
        )
        if idle_mb is not None:
            say("memory: one idle student server (container)", f"{idle_mb:.0f} MB")
    finally:
        stack.stop()
        # Everything this run made carries RUN in its name: the students' containers and volumes, ours.
        containers_left = _docker("ps", "-aq", "--filter", f"name={RUN}", check=False).split()
        if containers_left:
            _docker("rm", "-f", *containers_left, check=False)
        volumes_left = _docker("volume", "ls", "-q", "--filter", f"name={RUN}", check=False).split()
        if volumes_left:
            _docker("volume", "rm", "-f", *volumes_left, check=False)


def _container_mb(name: str) -> float | None:
    out = _docker("stats", "--no-stream", "--format", "{{json .}}", name, check=False)
    try:
        usage = json.loads(out)["MemUsage"].split("/")[0].strip()
    except (ValueError, KeyError):
        return None
    number, unit = float(usage.rstrip("KMGiB")), usage.lstrip("0123456789.")
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1024**2}.get(unit, 1)


def _stop_servers(stack: Stack, names: list[str]) -> None:
    token = stack.hub_admin_token()
    for name in names:
        httpx.delete(f"{stack.hub_api_url}/users/{name}/server", headers={"Authorization": f"token {token}"},
                     trust_env=False, timeout=120)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = _docker("ps", "-q", "--filter", f"name=jupyter-sp{RUN}", check=False)
        if not left:
            return
        time.sleep(1)
