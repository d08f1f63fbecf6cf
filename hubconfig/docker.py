"""Each user's JupyterLab in its own Docker container: which spawner the hub uses, and how DockerSpawner is
configured (`apply_docker_config`, set-only like `hubconfig.config.apply_config`).

Rules:
- SPAWNER=docker|swarm|local in .env picks the spawner (swarm: hubconfig/swarm.py, the same settings as
  services of a Docker Swarm). Unset: docker in prod; in dev docker when the engine answers and
  DOCKER_IMAGE, the users' network and the shared volumes exist (build_image, setup_volumes), else local,
  and the hub's log says why (`choose_spawner`, in userspace/engine.py: the course worker asks it too).
- Names, mounts and limits come from portal/config/containers.py (the same values `build_image` and
  `setup_volumes` use); the team volume of each portal group the user belongs to is added at every start,
  from the hub user's groups (synced from the portal at login and before each spawn).
- Networking: DOCKER_NETWORK=cfps-users (default), the bridge network setup_volumes creates with
  inter-container traffic off (userspace/isolation.py), or another Docker network: the hub listens on every
  interface and containers reach it at DOCKER_INTERFACE_IP (default: the network's gateway); users' servers
  are published on 127.0.0.1 only, where the proxy reaches them and other containers cannot.
  DOCKER_NETWORK=host: containers share the host's network, the hub stays on 127.0.0.1 and each server
  listens on 127.0.0.1 at a free port; no network isolation (a student's code reaches every service on
  127.0.0.1), meant for tests, and refused in APP_PROFILE=prod, like a one-node swarm. A network that lets
  containers talk to each other (Docker's default `bridge`, host) is a warning in the hub's log.
- Confinement (every network): no capabilities (`cap_drop: ALL`; the server runs as jovyan and needs
  none, and the bounding set is empty too, so a setuid program gains nothing), `no-new-privileges`, at most
  PIDS_LIMIT tasks, the memory and CPU limits. USER_DISK_QUOTA where the engine enforces it, else one line
  in the log at start and at the first spawn.
- `remove=True`: a stopped server's container is deleted, so a new image or limit applies at the next
  start; the volumes stay.
- While the engine does not answer (restarting, stopped), nothing is decided about a running server: a poll
  keeps it as it is, with one line in the log (with live-restore its container still runs; without, the first
  poll after the engine is back finds it stopped), and a start fails with a 503 that says so, not a traceback.
- Starting: the engine calls of all servers share DOCKER_THREADS threads (DockerSpawner's own is one, so a
  class starting together queued behind each other's create and start calls), and `start()` returns once
  the server answers, asked every ANSWER_POLL_SECONDS: JupyterHub's own wait retries with a random backoff
  of up to 5 s, so a server up after 2 s was seen up after 4. Meanwhile the container is watched: one that
  stops before its server answers fails the start at once, saying so (JupyterHub looks only after its
  slow-spawn timeout, and not at all while start() has not returned).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from dockerspawner import DockerSpawner
from jupyterhub.utils import fmt_ip_url, random_port
from tornado import web
from traitlets import Dict, Unicode

from portal.config import Config
from portal.config import containers as ct
from portal.config.env import EnvError
from portal.config.table import BY_NAME
from userspace import volumes
from userspace.engine import (  # noqa: F401 (choose_spawner: the hub's and run.sh's name for it)
    DOCKER_ENGINE_TIMEOUT,
    choose_spawner,
    engine_problem,
    engine_unreachable,
    first_line,
)

DOCKER_THREADS = 10  # engine calls at once, for all servers together
ANSWER_POLL_SECONDS = 0.1  # a refused connection costs nothing; a server that is up answers in milliseconds
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ENGINE_AWAY = (  # hubconfig/templates/error.html knows its first words and shows it translated
    "The Docker engine does not answer (it may be restarting), so no server can start now: try again in a minute."
)

# Copies the example notebooks into a new home once, then becomes the single-user server. Never overwrites:
# once ~/notebooks exists (the student's own copy, edited or not) it is left alone.
START_SCRIPT = """\
if [ ! -e "$HOME/notebooks" ] && [ -d "$CFPS_DATA_DIR/notebooks" ]; then
    rm -rf "$HOME/.notebooks.partial"
    if cp -R "$CFPS_DATA_DIR/notebooks" "$HOME/.notebooks.partial"; then
        mv "$HOME/.notebooks.partial" "$HOME/notebooks"
    else
        echo "cfps: could not copy the example notebooks into $HOME/notebooks" >&2
    fi
fi
exec "$@"
"""
# Python started without rfc3987_syntax (hubconfig/hub.py does the same for the hub, and says why): jsonschema's
# checker for the "iri" format, which no Jupyter schema uses, compiles a grammar when imported, about 1 s of
# CPU at every server start and 17 MB for the server's life (measured on bare JupyterLab: 1.56 -> 0.62 s, 70 ->
# 53 MB). cfps-singleuser does it first; the benchmark's bare containers start this way (tests/bench/classday.py).
WITHOUT_IRI_GRAMMAR = "import sys; sys.modules['rfc3987_syntax'] = None"
# The image's jupyterhub-singleuser without the imports it never runs (singleuser/image/cfps_singleuser.py says which).
SINGLEUSER = ["cfps-singleuser"]


def docker_warnings(config: Config) -> list[str]:
    """The hub log's lines about Docker at start: what stops servers from starting, a network that does not
    keep containers apart, a disk quota the engine cannot enforce."""
    import docker

    from userspace import isolation

    cfg = config.containers
    problem = engine_problem(cfg.image, cfg.network, (cfg.data_volume, cfg.team_volume))
    if problem:
        return [f"WARNING: users' servers cannot start: {problem}"]
    lines = []
    client = docker.from_env(timeout=DOCKER_ENGINE_TIMEOUT)
    try:
        if network := isolation.network_problem(client, cfg.network):
            lines.append(f"WARNING: {network}")
        if cfg.disk_quota:
            lines += [f"WARNING: {line}" for line in isolation.quota_report(client, cfg.image, cfg.disk_quota)[2]]
    finally:
        client.close()
    return lines


def network_gateway(network: str) -> str:
    """The host's address on a Docker network (its gateway): where containers on it reach the hub."""
    import docker

    try:
        client = docker.from_env(timeout=DOCKER_ENGINE_TIMEOUT)
        configs = client.networks.get(network).attrs.get("IPAM", {}).get("Config") or []
    except docker.errors.NotFound:
        raise EnvError(
            f"the Docker network {network} (DOCKER_NETWORK) does not exist: python manage.py setup_volumes creates it"
        ) from None
    except Exception as exc:
        raise EnvError(
            f"cannot ask Docker for the address of network {network} ({str(exc).splitlines()[0]}); "
            "set DOCKER_INTERFACE_IP in .env"
        ) from None
    for config in configs:
        if config.get("Gateway") and ":" not in config["Gateway"]:
            return config["Gateway"]
        subnet = ipaddress.ip_network(config.get("Subnet") or "::/128", strict=False)
        if subnet.version == 4:
            return str(next(subnet.hosts()))  # Docker gives the gateway the subnet's first address
    raise EnvError(f"Docker network {network} has no IPv4 gateway; set DOCKER_INTERFACE_IP in .env")


def container_environment(config: Config, interface_ip: str = "") -> dict[str, str]:
    """What every container's server sees besides JupyterHub's own variables: the data-folder contract
    (userspace/datafolder.py) and the dataset (portal/config/dataset.py), with the data folder at ~/data. On a Docker
    network, a dataset server on the host's loopback is reached at the host's address on that network."""
    from portal.config import dataset

    account = config.dataset.read_only
    host = interface_ip if interface_ip and account and account.host in LOOPBACK else None
    return dataset.notebook_environment(config.dataset, PurePosixPath(ct.DATA_MOUNT), host)


def apply_container_config(c, config: Config) -> ct.Containers:
    """What every user's container is, whichever Docker spawner runs it (CfpsSwarmSpawner inherits this
    section of the config): image, volumes, limits, command, confinement. Only assignments to `c`."""
    cfg = config.containers
    spawner = c.CfpsDockerSpawner
    spawner.image = cfg.image
    spawner.pull_policy = "never"  # built here by build_image; there may be no registry to pull from
    spawner.remove = True
    spawner.notebook_dir = ct.HOME
    spawner.volumes = {
        ct.USER_VOLUME_TEMPLATE: ct.HOME,
        cfg.data_volume: {"bind": ct.DATA_MOUNT, "mode": "ro"},
        cfg.team_volume: {"bind": ct.TEAM_MOUNT, "mode": "rw"},
    }
    spawner.mem_limit = cfg.mem_limit
    spawner.cpu_limit = cfg.cpu_limit
    spawner.group_limits = {
        group: {"mem_limit": limits.mem_bytes, "cpu_limit": limits.cpus} for group, limits in cfg.group_limits.items()
    }
    # JupyterLab's Chinese defaults are inside the image (hubconfig/lab_settings is a path on the host).
    spawner.args = []
    spawner.cmd = ["sh", "-c", START_SCRIPT, "cfps-start", *SINGLEUSER]
    spawner.extra_host_config = {
        # docker-init as PID 1 reaps the zombies that kernels and terminals leave behind.
        "init": True,
        # jovyan needs no capability; an empty bounding set also leaves the image's setuid programs powerless.
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": cfg.pids_limit,
    }
    spawner.disk_quota = cfg.disk_quota
    return cfg


def apply_docker_config(c, config: Config) -> None:
    """Configure CfpsDockerSpawner; only assignments to `c`."""
    c.JupyterHub.spawner_class = "hubconfig.docker.CfpsDockerSpawner"
    cfg = apply_container_config(c, config)
    hub_port = config.topology.hub_port
    if cfg.network == "host" and config.prod:
        raise EnvError(
            "DOCKER_NETWORK=host puts students' servers on this machine's own network, where gunicorn, Redis, "
            "MariaDB and the proxy's API listen on 127.0.0.1; APP_PROFILE=prod refuses it: use "
            f"DOCKER_NETWORK={BY_NAME['DOCKER_NETWORK'].default_for('prod')} (python manage.py setup_volumes creates it)"
        )
    spawner = c.CfpsDockerSpawner
    spawner.network_name = cfg.network
    if cfg.network == "host":
        spawner.ip = "127.0.0.1"
        spawner.use_internal_ip = True  # no port publishing: the server is on the host's loopback already
        spawner.environment = container_environment(config)
    else:
        spawner.ip = "0.0.0.0"
        interface_ip = cfg.interface_ip or network_gateway(cfg.network)
        # The portal and the proxy call the hub on 127.0.0.1, containers on the Docker network's gateway;
        # one listening address serves both. Only the firewall keeps HUB_PORT from other machines.
        c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{hub_port}"
        c.JupyterHub.hub_connect_url = f"http://{interface_ip}:{hub_port}"
        spawner.environment = container_environment(config, interface_ip)


class CfpsDockerSpawner(DockerSpawner):
    """DockerSpawner plus one read-write volume per portal group of the user, per-group limits, checks
    that name the missing step, and a free loopback port per server on the host network."""

    group_limits = Dict(
        config=True,
        help="Portal group → {'mem_limit': bytes or None, 'cpu_limit': CPUs or None}; the largest of a user's groups wins.",
    )
    teams_dir = Unicode(ct.TEAMS_MOUNT, config=True, help="Where the group volumes are mounted in the container.")
    disk_quota = Unicode(
        "",
        config=True,
        help="USER_DISK_QUOTA (e.g. 5G) for the user's home volume and the container's writable layer, each where "
        "the engine supports it; empty: no quota.",
    )

    _sdk_client = None  # one high-level Docker SDK client per process (DockerSpawner's own is the low-level one)
    _engine_threads: ThreadPoolExecutor | None = None  # shared by every server (module docstring: Starting)
    _quota_support: tuple[bool, bool] | None = None  # (home volumes, writable layers), asked once per process
    _started_nothing = False  # the last start failed before making a container (the engine did not answer)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._configured_limits = (self.mem_limit, self.cpu_limit)

    @property
    def executor(self):
        if CfpsDockerSpawner._engine_threads is None:
            CfpsDockerSpawner._engine_threads = ThreadPoolExecutor(DOCKER_THREADS, thread_name_prefix="cfps-docker")
        return CfpsDockerSpawner._engine_threads

    @property
    def sdk(self):
        cls = type(self)
        if cls._sdk_client is None:
            import docker

            cls._sdk_client = docker.from_env(version="auto")
        return cls._sdk_client

    def group_names(self) -> list[str]:
        return sorted(group.name for group in self.user.groups)

    @property
    def volume_binds(self):
        binds = super().volume_binds
        for group in self.group_names():
            binds[ct.group_volume(group)] = {"bind": f"{self.teams_dir}/{ct.group_folder(group)}", "mode": "rw"}
        return binds

    def apply_group_limits(self, groups: list[str]) -> None:
        mem, cpu = self._configured_limits
        overrides = [self.group_limits[g] for g in groups if g in self.group_limits]
        mems = [o["mem_limit"] for o in overrides if o.get("mem_limit")]
        cpus = [o["cpu_limit"] for o in overrides if o.get("cpu_limit")]
        self.mem_limit = max(mems, default=mem)
        self.cpu_limit = max(cpus, default=cpu)

    def _prepare(self, groups: list[str]) -> None:
        """Blocking checks and set-up, run in the spawner's thread pool."""
        import docker

        try:
            self.sdk.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise RuntimeError(
                f"the notebook image {self.image} is missing: run python manage.py build_image"
            ) from None
        for name in self.volumes:
            if "{" in name:
                continue  # the user's own volume, created by Docker on first use
            try:
                self.sdk.volumes.get(name)
            except docker.errors.NotFound:
                raise RuntimeError(f"Docker volume {name} is missing: run python manage.py setup_volumes") from None
        if self.network_name != "host":
            try:
                self.sdk.networks.get(self.network_name)
            except docker.errors.NotFound:
                raise RuntimeError(
                    f"Docker network {self.network_name} is missing: run python manage.py setup_volumes"
                ) from None
        self.ensure_volumes(groups)
        if self.disk_quota:
            self._apply_disk_quota()

    def ensure_volumes(self, groups: list[str]) -> None:
        """Make the volumes a server needs that Docker would not make right by itself: one per group."""
        for group in groups:
            volumes.ensure_team_volume(self.sdk, self.image, group)

    def _apply_disk_quota(self) -> None:
        from userspace import isolation

        cls = type(self)
        if cls._quota_support is None:
            volume_ok, layer_ok, lines = isolation.quota_report(self.sdk, self.image, self.disk_quota)
            for line in lines:
                self.log.warning(line)
            cls._quota_support = (volume_ok, layer_ok)
        volume_ok, layer_ok = cls._quota_support
        if volume_ok:
            home = self.format_volume_name(ct.USER_VOLUME_TEMPLATE, self)
            if isolation.create_sized_volume(self.sdk, home, self.disk_quota):
                self.log.info("Created %s with a %s quota", home, self.disk_quota)
        if layer_ok:
            self.extra_host_config = {**self.extra_host_config, "storage_opt": {"size": self.disk_quota}}

    async def start(self):
        started = time.monotonic()
        self._started_nothing = False
        groups = self.group_names()
        self.apply_group_limits(groups)
        try:
            await asyncio.wrap_future(self.executor.submit(self._prepare, groups))
        except Exception as exc:
            if not engine_unreachable(exc):
                raise
            self.log.warning("Not starting %s: the Docker engine does not answer (%s)", self._log_name, first_line(exc))
            self._started_nothing = True
            # An HTTPError is logged in one line; jupyterhub_message keeps the hub from showing its generic
            # "Failed to start your server" instead of the reason.
            error = web.HTTPError(503, ENGINE_AWAY)
            error.jupyterhub_message = ENGINE_AWAY
            raise error from None
        if self.network_name == "host":
            self.port = random_port()
        ip, port = await super().start()
        # Back before JupyterHub's own start timeout, which would otherwise end a slow start with a different
        # message; JupyterHub's own wait then goes on as usual.
        await self.until_answering(ip, port, deadline=started + max(self.start_timeout - 5, 0))
        return ip, port

    async def until_answering(self, ip: str, port: int, deadline: float) -> None:
        """Return when the server answers where JupyterHub will check it (any status below 500), or at
        `deadline`; raise if its container stops first (module docstring: Starting)."""
        import aiohttp
        from jupyterhub.httpclient import fetch

        if self.internal_ssl or self.object_type != "container":
            # JupyterHub's own check has the certificates; a Swarm service's tasks pass through states that poll()
            # reports as stopped before they run.
            return
        url = f"http://{fmt_ip_url(ip)}:{port}{self.server.base_url}api"
        next_poll = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                response = await fetch(
                    url, raise_for_status=False, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=2)
                )
                response.release()
                if response.status < 500:
                    return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass  # not listening yet
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1
                if (status := await self.poll()) is not None:
                    raise RuntimeError(
                        f"the server of {self._log_name} stopped before it answered (exit status {status})"
                    )
            await asyncio.sleep(ANSWER_POLL_SECONDS)

    async def stop(self, now=False):
        if self._started_nothing:
            # The hub cleans up after the failed start above, which made no container; the engine is away, and
            # an older container of this name, if any, is removed by the next start (remove=True).
            self._started_nothing = False
            return
        return await super().stop(now=now)

    async def poll(self):
        try:
            return await super().poll()
        except Exception as exc:
            if not engine_unreachable(exc):
                raise
            self.log.warning(
                "Cannot poll %s: the Docker engine does not answer (%s); it counts as running until the engine answers",
                self._log_name,
                first_line(exc),
            )
            return None

    async def get_ip_and_port(self):
        if self.network_name == "host":
            return self.ip, self.port
        return await super().get_ip_and_port()
