"""SPAWNER=swarm: where the swarm's manager is, where homes live, and which networks the workers are on.

Read by the hub's swarm spawner (hubconfig/swarm.py), the firewall (gen_firewall) and anything that reaches a
student's home outside their server (userspace/). Imports nothing from Django.

SWARM_VOLUMES:
    local            each node's own Docker volumes (one node only)
    shared           DATA_ROOT is mounted at the same path on every node; homes are DATA_ROOT/volumes/<volume>
    nfs://HOST/PATH  every node mounts that export (DATA_ROOT on the manager) through Docker's local driver
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from portal.config.env import Env, EnvError

# Under DATA_ROOT with SWARM_VOLUMES shared or nfs: one folder per home and group volume (DATA_ROOT/volumes/<volume>).
VOLUMES_FOLDER = "volumes"


@dataclass(frozen=True)
class SwarmVolumes:
    kind: str  # local | shared | nfs
    nfs_host: str = ""
    nfs_path: str = ""
    nfs_options: str = ""


@dataclass(frozen=True)
class Swarm:
    manager_ip: str  # "" : one node, this one
    volumes: SwarmVolumes
    workers: list[str] = field(default_factory=list)  # CIDRs of the worker nodes' networks


def volumes_from_env(env: Env) -> SwarmVolumes:
    text = env.get("SWARM_VOLUMES").strip()
    options = env.get("SWARM_NFS_OPTIONS").strip()
    if text in {"local", "shared"}:
        return SwarmVolumes(text, nfs_options=options)
    url = urlsplit(text)
    if url.scheme == "nfs" and url.hostname and url.path.startswith("/") and not url.query:
        return SwarmVolumes("nfs", url.hostname, url.path.rstrip("/"), options)
    raise EnvError(
        f"SWARM_VOLUMES must be local, shared or nfs://HOST/PATH (e.g. nfs://10.0.0.5/srv/cfps), not {text!r}"
    )


def from_env(env: Env) -> Swarm:
    return Swarm(
        manager_ip=env.get("SWARM_MANAGER_IP").strip(),
        volumes=volumes_from_env(env),
        workers=env.list("SWARM_WORKERS"),
    )
