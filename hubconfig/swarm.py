"""Each user's JupyterLab as a Docker Swarm service (SPAWNER=swarm), so a class can grow past one machine.

CfpsSwarmSpawner is dockerspawner's SwarmSpawner with everything CfpsDockerSpawner (hubconfig/docker.py)
adds, and it reads the same `c.CfpsDockerSpawner` section (`apply_container_config`): image, volumes
(the private home, ~/data read-only, ~/team-shared, one per portal group), memory and CPU limits, group
limits, command and environment have one definition for both spawners. `apply_swarm_config` sets only
what is the swarm's own, in `c.CfpsSwarmSpawner`.

Rules:
- Confinement: the container settings in `extra_host_config` become the service's task spec
  (`service_settings`): docker-init, no capabilities, the pids limit (Engine API 1.41), no-new-privileges
  (Engine API 1.44, Docker 25). What the engine in use cannot carry in a service spec is named in the hub's
  log at every start (`swarm_warnings`); the writable layer's size (USER_DISK_QUOTA) never is.
- A server that exits is stopped, as a container would be: restart condition `none`, and a task the node
  refused (an image it lacks, a mount it cannot make) fails the start with the node's reason.
- Network: a service can neither join the cfps-users bridge of one machine nor be published on one address
  only, so every task uses its node's host network (DOCKER_NETWORK is not used):
  - one node (SWARM_MANAGER_IP empty): tasks stay on the hub's own node and servers listen on 127.0.0.1,
    as SPAWNER=docker with DOCKER_NETWORK=host: no network isolation from this machine's services, so
    APP_PROFILE=prod refuses it;
  - a cluster (SWARM_MANAGER_IP = this machine's address on the nodes' network): tasks run on worker nodes
    only, never beside the portal, the databases and Redis; each server listens on its node at the port the
    hub picked, the hub's proxy reaches it at the node's address, and the hub listens on every interface
    for the servers' calls (the firewall keeps HUB_PORT to the workers).
- Volumes (SWARM_VOLUMES): `local`, each node's own Docker volumes (one node; a cluster refuses it);
  `shared`, DATA_ROOT is a folder every node mounts at the same path; `nfs://HOST/PATH`, the nodes mount
  HOST:PATH through the local driver's NFS options, and DATA_ROOT on this machine is that export. Shared or
  NFS: the data and team-shared volumes are DATA_ROOT/data and DATA_ROOT/team-shared (what setup_volumes
  binds them to), and every home and group volume is the folder DATA_ROOT/volumes/<volume name>, which the
  hub makes and gives to the notebook user before the server starts; each mount carries its volume's
  options, so whichever node runs the task creates the volume there on first use. Volume names are the
  docker spawner's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from docker.types import DriverConfig, Mount, Resources, RestartPolicy
from dockerspawner import SwarmSpawner
from traitlets import Bool, Dict, Unicode
from traitlets.config import Config

from hubconfig.docker import (
    DOCKER_ENGINE_TIMEOUT,
    CfpsDockerSpawner,
    apply_container_config,
    container_environment,
    engine_problem,
)
from portal.config import Config as AppConfig
from portal.config import containers as ct
from portal.config.env import EnvError
from portal.config.swarm import VOLUMES_FOLDER  # noqa: F401 (the name this module has always had)
from portal.config.table import BY_NAME
from userspace import volumes

NO_NEW_PRIVILEGES_API = (1, 44)
PIDS_LIMIT_API = (1, 41)
# Task states after which swarm (restart condition none) starts nothing more.
FINAL_STATES = {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}


def api_at_least(version: str, wanted: tuple[int, int]) -> bool:
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= wanted
    except ValueError:
        return False


def service_settings(host_config: dict, api_version: str) -> tuple[dict, dict, list[str]]:
    """A container's `extra_host_config` as a service's (ContainerSpec arguments, Resources.Limits entries,
    what this engine's service specs cannot carry, one phrase each)."""
    container: dict = {}
    limits: dict = {}
    missing: list[str] = []
    for key, value in host_config.items():
        if key in {"init", "cap_drop"}:
            container[key] = value
        elif key == "pids_limit":
            if api_at_least(api_version, PIDS_LIMIT_API):
                limits["Pids"] = value
            else:
                missing.append(f"the pids limit (PIDS_LIMIT; Engine API 1.41, this engine speaks {api_version})")
        elif key == "security_opt":
            for option in value:
                if option in {"no-new-privileges", "no-new-privileges:true"}:
                    if api_at_least(api_version, NO_NEW_PRIVILEGES_API):
                        container["privileges"] = {"NoNewPrivileges": True}
                    else:
                        missing.append(
                            f"no-new-privileges (Engine API 1.44, Docker 25; this engine speaks {api_version}: set "
                            '"no-new-privileges": true in /etc/docker/daemon.json of every node)'
                        )
                else:
                    missing.append(f"the security option {option}")
        elif key == "storage_opt":
            missing.append("the size of the writable layer (USER_DISK_QUOTA): service specs have no storage options")
        else:
            missing.append(f"the container setting {key}")
    return container, limits, missing


def notebook_users_folder(folder: Path) -> bool:
    """Whether `folder` exists and belongs to the notebook user. Its mode is not checked: a new home takes
    the image's /home/jovyan mode when Docker first copies the image's files into it."""
    try:
        stat = folder.stat()
    except FileNotFoundError:
        return False
    return (stat.st_uid, stat.st_gid) == (ct.NOTEBOOK_UID, ct.NOTEBOOK_GID)


def apply_swarm_config(c, config: AppConfig) -> None:
    """Configure CfpsSwarmSpawner; only assignments to `c`."""
    c.JupyterHub.spawner_class = "hubconfig.swarm.CfpsSwarmSpawner"
    cfg = apply_container_config(c, config)
    hub_port = config.topology.hub_port
    shared = config.swarm.volumes
    manager_ip = config.swarm.manager_ip
    if manager_ip and shared.kind == "local":
        raise EnvError(
            "SWARM_MANAGER_IP is set (servers on worker nodes) but SWARM_VOLUMES=local keeps each home on one node: "
            "set SWARM_VOLUMES=shared or nfs://HOST/PATH"
        )
    if not manager_ip and config.prod:
        raise EnvError(
            "SPAWNER=swarm on one node puts students' servers on this machine's host network, beside the "
            "databases and Redis; APP_PROFILE=prod refuses it: set SWARM_MANAGER_IP and add worker nodes, or use "
            "SPAWNER=docker"
        )
    spawner = c.CfpsSwarmSpawner
    spawner.network_name = "host"
    spawner.use_internal_ip = True  # nothing is published: the server is on its node's own network already
    spawner.cluster = bool(manager_ip)
    spawner.volume_root = "" if shared.kind == "local" else str(cfg.data_root)
    spawner.shared_folders = {cfg.data_volume: cfg.data_dir.name, cfg.team_volume: cfg.team_dir.name}
    spawner.nfs_server = shared.nfs_host
    spawner.nfs_export = shared.nfs_path
    spawner.nfs_options = shared.nfs_options
    if manager_ip:
        spawner.ip = "0.0.0.0"
        c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{hub_port}"
        c.JupyterHub.hub_connect_url = f"http://{manager_ip}:{hub_port}"
        spawner.environment = container_environment(config, manager_ip)
    else:
        spawner.ip = "127.0.0.1"
        spawner.environment = container_environment(config)


def swarm_warnings(config: AppConfig) -> list[str]:
    """The hub log's lines about the swarm at start: what stops servers from starting, what a service spec
    on this engine does not enforce, and the network's isolation."""
    import docker

    cfg = config.containers
    problem = engine_problem(cfg.image, "host", (cfg.data_volume, cfg.team_volume))
    if problem:
        return [f"WARNING: users' servers cannot start: {problem}"]
    client = docker.APIClient(version="auto", timeout=DOCKER_ENGINE_TIMEOUT)
    try:
        state = client.info().get("Swarm") or {}
        if state.get("LocalNodeState") != "active" or not state.get("ControlAvailable"):
            return [
                "WARNING: users' servers cannot start: this Docker engine is not a swarm manager "
                "(docker swarm init --advertise-addr ADDRESS)"
            ]
        workers = [
            node
            for node in client.nodes(filters={"role": "worker"})
            if node["Status"]["State"] == "ready" and node["Spec"].get("Availability") == "active"
        ]
        api_version = client.api_version
    finally:
        client.close()
    c = Config()
    apply_container_config(c, config)
    missing = service_settings(dict(c.CfpsDockerSpawner.extra_host_config), api_version)[2]
    if cfg.disk_quota:
        # (storage_opt joins extra_host_config only at a spawn, where the engine supports it)
        missing += service_settings({"storage_opt": {"size": cfg.disk_quota}}, api_version)[2]
        if config.swarm.volumes.kind != "local":
            missing.append("USER_DISK_QUOTA on the homes: folders on shared or NFS storage have no quota")
    lines = [f"WARNING: SPAWNER=swarm does not enforce here: {item}" for item in missing]
    if config.swarm.manager_ip:
        if not workers:
            lines.append(
                "WARNING: users' servers cannot start: the swarm has no active worker node "
                "(docker swarm join-token worker prints the command to run on one)"
            )
        lines.append(
            "WARNING: servers use their worker's host network: servers on one worker are not kept apart "
            "by the network (each still demands the hub's login)"
        )
    else:
        lines.append(
            "WARNING: SPAWNER=swarm on one node: servers share this machine's host network, no network "
            "isolation (meant for trying the swarm; a class needs SWARM_MANAGER_IP and worker nodes)"
        )
    return lines


class CfpsSwarmSpawner(CfpsDockerSpawner, SwarmSpawner):
    """CfpsDockerSpawner's volumes, limits and checks, run as one Swarm service per server."""

    cluster = Bool(
        False,
        config=True,
        help="True: servers run on worker nodes and are reached at their node's address; False: on this node, "
        "on 127.0.0.1.",
    )
    volume_root = Unicode(
        "",
        config=True,
        help="DATA_ROOT when it is on storage every node reaches (SWARM_VOLUMES shared or nfs); empty: the "
        "nodes' own Docker volumes.",
    )
    shared_folders = Dict(
        config=True, help="Volume name → its folder under volume_root, for the shared data and team volumes."
    )
    nfs_server = Unicode("", config=True, help="The NFS server the nodes mount volume_root from; empty: none.")
    nfs_export = Unicode("", config=True, help="volume_root's path on the NFS server.")
    nfs_options = Unicode(
        BY_NAME["SWARM_NFS_OPTIONS"].default_for("dev"),
        config=True,
        help="Mount options after addr=, e.g. nfsvers=4.2.",
    )

    def folder_of(self, name: str) -> str:
        """Where volume `name` lives under volume_root (a relative path)."""
        return self.shared_folders.get(name) or f"{VOLUMES_FOLDER}/{name}"

    def volume_options(self, name: str) -> dict[str, str]:
        """The local driver's options that make volume `name` the same folder on every node."""
        folder = self.folder_of(name)
        if self.nfs_server:
            return {
                "type": "nfs",
                "o": f"addr={self.nfs_server},{self.nfs_options}",
                "device": f":{self.nfs_export}/{folder}",
            }
        return volumes.bind_options(Path(self.volume_root) / folder)

    @property
    def mounts(self):
        # SwarmSpawner's own mounts are bind mounts of host paths; ours are named volumes, as the containers'.
        return [
            Mount(
                target=bind["bind"],
                source=name,
                type="volume",
                read_only=bind["mode"] == "ro",
                driver_config=DriverConfig("local", self.volume_options(name)) if self.volume_root else None,
            )
            for name, bind in self.volume_binds.items()
        ]

    def ensure_volumes(self, groups: list[str]) -> None:
        if not self.volume_root:
            return super().ensure_volumes(groups)
        import docker

        names = [self.format_volume_name(ct.USER_VOLUME_TEMPLATE, self), *(ct.group_volume(g) for g in groups)]
        for name in names:
            folder = Path(self.volume_root) / self.folder_of(name)
            if not notebook_users_folder(folder):
                # Docker makes a missing bind source; the root container then gives it to the notebook user.
                volumes.give_to_notebook_user(self.sdk, self.image, str(folder))
            try:
                found = self.sdk.volumes.get(name).attrs.get("Options") or {}
            except docker.errors.NotFound:
                continue
            if found != self.volume_options(name):
                raise RuntimeError(
                    f"Docker volume {name} on this node is not {folder} ({found.get('device') or 'Docker storage'}): "
                    f"copy its files there and remove it (docker volume rm {name})"
                )

    def _apply_disk_quota(self) -> None:
        if not self.volume_root:  # sized volumes exist only in a node's own Docker storage
            super()._apply_disk_quota()

    async def create_object(self):
        container, limits, _ = service_settings(self.extra_host_config, self.client.api_version)
        self.extra_container_spec = container
        resources = Resources(
            mem_limit=self.mem_limit,
            mem_reservation=self.mem_guarantee,
            cpu_limit=int(self.cpu_limit * 1e9) if self.cpu_limit else None,
            cpu_reservation=int(self.cpu_guarantee * 1e9) if self.cpu_guarantee else None,
        )
        if limits:
            resources.setdefault("Limits", {}).update(limits)
        self.extra_task_spec = {"resources": resources, "restart_policy": RestartPolicy(condition="none")}
        if self.cluster:
            constraint = "node.role==worker"
        else:
            info = await self.docker("info")
            constraint = f"node.id=={info['Swarm']['NodeID']}"
        self.extra_placement_spec = {"constraints": [constraint]}
        return await super().create_object()

    async def start_object(self):
        """Wait until the task runs; a task its node refused or that ended fails the start with the reason
        (SwarmSpawner would wait for a retry that restart condition none never makes)."""
        delay = 0.5
        while True:
            task = await self.get_task()
            if task is None:
                raise RuntimeError(f"Service {self.service_name} has no task")
            status = task["Status"]
            state = status["State"].lower()
            if state == "running":
                return
            if state in FINAL_STATES:
                reason = status.get("Err") or status.get("Message") or state
                raise RuntimeError(f"Service {self.service_name} did not start on its node: {reason}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5)

    async def get_ip_and_port(self):
        if not self.cluster:
            return await super().get_ip_and_port()  # 127.0.0.1 and the port picked at start
        task = await self.get_task()
        node = await self.docker("inspect_node", task["NodeID"])
        return node["Status"]["Addr"], self.port
