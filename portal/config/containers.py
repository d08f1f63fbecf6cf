"""How the users' notebook containers are built and run, derived once from `.env`.

The portal's commands (`build_image`, `setup_volumes`, through `settings.CONTAINERS`) and the hub's
DockerSpawner (`hubconfig/docker.py`) read this, so an image or volume name is never typed twice.

Inside every container (user `jovyan`, uid 1000, gid 100, home /home/jovyan):

    /home/jovyan               the user's own volume  jupyterhub-user-{username}   read-write
    /home/jovyan/data          DOCKER_DATA_VOLUME, a bind onto DATA_ROOT/data       read-only
    /home/jovyan/team-shared   DOCKER_TEAM_VOLUME, a bind onto DATA_ROOT/team-shared read-write, everyone
    /home/jovyan/teams/<group> cfps-team-<group>, one per portal group of the user  read-write, members

Rules:
- `GROUP_LIMITS` is `group:memory:cpus` entries separated by `;`, either limit may be empty
  (`class-a:2G:1.0;research:8G:4;tutors::2`). A user in several listed groups gets the largest of each.
- Relative paths (DATA_ROOT) are relative to the repository, like DATABASE_URL's SQLite paths.
- Every container runs with no capabilities at all (the server runs as jovyan and needs none), with
  `no-new-privileges` (the image's setuid programs, su and mount, stay powerless), at most PIDS_LIMIT
  processes and threads, and MEM_LIMIT/CPU_LIMIT (or its group's).
- DOCKER_NETWORK (default `cfps-users`) is a bridge network that `setup_volumes` creates with
  inter-container traffic off, so one student's container cannot reach another's server; the hub and the
  dataset server on the host stay reachable (the host's firewall, `gen_firewall`, narrows that to their
  ports). `host` is for tests only (APP_PROFILE=prod refuses it); Docker's default `bridge` lets containers
  reach each other.
- USER_DISK_QUOTA (e.g. 5G; empty: none) caps each user's home volume and the container's own writable
  layer where the engine can enforce it (Docker's root on xfs mounted with pquota); elsewhere the hub and
  `setup_volumes` say in one line that it is not enforced, and servers start without it.

This module imports nothing from Django so that `hubconfig/` can use it too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from portal.config.env import BASE_DIR, Env, EnvError, var_dir

NOTEBOOK_USER = "jovyan"
NOTEBOOK_UID = 1000
NOTEBOOK_GID = 100  # "users", as in the Jupyter docker-stacks images
HOME = "/home/jovyan"
DATA_MOUNT = f"{HOME}/data"
TEAM_MOUNT = f"{HOME}/team-shared"
TEAMS_MOUNT = f"{HOME}/teams"
USER_VOLUME_TEMPLATE = "jupyterhub-user-{username}"
GROUP_VOLUME_PREFIX = "cfps-team-"
# The bridge option that turns off traffic between two containers of one network (Docker's --icc, per network).
ICC_OPTION = "com.docker.network.bridge.enable_icc"
# Empty: the Debian mirror this machine's apt already uses (see apt_debian_mirror), so a campus server
# behind a local mirror needs no setting.
DEFAULT_MIRROR = ""
APT_DIR = Path("/etc/apt")


def apt_debian_mirror(apt_dir: Path = APT_DIR) -> str:
    """The first Debian archive URI in this machine's apt sources (not the security archive), or "".

    The sources are listed when asked, not at import: importing this module reads nothing from the disk."""
    parts_dir = apt_dir / "sources.list.d"
    uris: list[str] = []
    for path in sorted(parts_dir.glob("*.sources")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            if "deb" in fields.get("Types", "").split() and "main" in fields.get("Components", "").split():
                uris += fields.get("URIs", "").split()
    for path in [apt_dir / "sources.list", *sorted(parts_dir.glob("*.list"))]:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 4 and parts[0] == "deb" and "main" in parts[3:]:
                uris.append(next(p for p in parts[1:] if "://" in p))
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return ""


_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)B?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_size(text: str, key: str) -> int:
    """`512M`, `2G`, `1.5G` → bytes (binary units, as Docker and JupyterHub read them)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise EnvError(f"{key}: {text!r} is not a size such as 512M or 2G")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def parse_cpus(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise EnvError(f"{key}: {text!r} is not a positive number of CPUs such as 1 or 0.5")
    return value


@dataclass(frozen=True)
class Limits:
    mem_bytes: int | None = None
    cpus: float | None = None


def parse_group_limits(text: str) -> dict[str, Limits]:
    limits = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        parts = entry.split(":")
        if len(parts) != 3 or not parts[0].strip():
            raise EnvError(f"GROUP_LIMITS entry {entry!r} is not group:memory:cpus (e.g. class-a:2G:1.0)")
        group, mem, cpus = (part.strip() for part in parts)
        limits[group] = Limits(
            mem_bytes=parse_size(mem, f"GROUP_LIMITS {group}") if mem else None,
            cpus=parse_cpus(cpus, f"GROUP_LIMITS {group}") if cpus else None,
        )
    return limits


def group_slug(group: str) -> str:
    """A name for a group that is safe in a Docker volume name and a folder name. Names that already are
    (`class-a`, `team_2`) stay as they are; others (`Class A`, `一班`) become ascii with a short hash so two
    groups never share a volume."""
    if _SAFE_NAME.match(group) and group.lower() == group:
        return group
    ascii_part = re.sub(r"[^a-z0-9_.-]+", "-", group.lower()).strip("-._") or "group"
    return f"{ascii_part[:40]}-{hashlib.sha256(group.encode()).hexdigest()[:8]}"


_SAFE_FOLDER = re.compile(r"^[^./:,\x00-\x1f][^/:,\x00-\x1f]*$")


def group_folder(group: str) -> str:
    """The folder of a group under ~/teams/: its own name (Chinese is fine) unless that cannot be a folder
    in a Docker bind (a `/`, `:` or `,`, a leading dot)."""
    return group if _SAFE_FOLDER.match(group) else group_slug(group)


def group_volume(group: str) -> str:
    return GROUP_VOLUME_PREFIX + group_slug(group)


_DOCKER_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def docker_safe(name: str) -> str:
    """A username as DockerSpawner puts it into container and volume names (its default `escape`, escapism with
    `-` as the escape character, lower case): `student-1` → `student-2d1`, `a_b` → `a-5fb`."""
    return "".join(c if c in _DOCKER_SAFE else "".join(f"-{b:x}" for b in c.encode()) for c in name).lower()


def user_volume(username: str) -> str:
    """The Docker volume of a user's home, as DockerSpawner names it from USER_VOLUME_TEMPLATE."""
    return USER_VOLUME_TEMPLATE.format(username=docker_safe(username))


@dataclass(frozen=True)
class Containers:
    image: str
    data_volume: str
    team_volume: str
    data_root: Path
    network: str
    interface_ip: str  # empty: the address of the engine's docker0 bridge, asked at hub start
    mem_limit: int
    cpu_limit: float
    group_limits: dict[str, Limits] = field(default_factory=dict)
    pids_limit: int = 512
    disk_quota: str = ""  # as written in .env (e.g. 5G), which is what Docker's size options take; "" = none
    debian_mirror: str = DEFAULT_MIRROR
    pip_index_url: str = ""  # empty: whatever pip on this machine is configured with

    @property
    def data_dir(self) -> Path:
        """The folder behind the read-only data volume (filled by userspace.datafolder.sync_data_folder)."""
        return self.data_root / "data"

    @property
    def team_dir(self) -> Path:
        return self.data_root / "team-shared"


def _path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else BASE_DIR / path


def _volume_name(env: Env, key: str) -> str:
    name = env.get(key)
    if not _SAFE_NAME.match(name):
        raise EnvError(f"{key}={name!r} is not a Docker volume name (letters, digits, _ . -)")
    return name


def _pids_limit(env: Env) -> int:
    value = env.int("PIDS_LIMIT")
    if value < 32:  # below that JupyterLab itself cannot start its threads
        raise EnvError(f"PIDS_LIMIT must be 32 or more (processes and threads per container), not {value}")
    return value


def _disk_quota(env: Env) -> str:
    text = env.get("USER_DISK_QUOTA").strip()
    if text:
        parse_size(text, "USER_DISK_QUOTA")
    return text.upper().removesuffix("B")  # Docker reads 5G, not 5GB


def from_env(env: Env) -> Containers:
    network = env.get("DOCKER_NETWORK")
    if not _SAFE_NAME.match(network):
        raise EnvError(f"DOCKER_NETWORK={network!r} is not a Docker network name")
    return Containers(
        image=env.get("DOCKER_IMAGE"),
        data_volume=_volume_name(env, "DOCKER_DATA_VOLUME"),
        team_volume=_volume_name(env, "DOCKER_TEAM_VOLUME"),
        data_root=_path(env.get("DATA_ROOT")) if env.get("DATA_ROOT") else var_dir() / "volumes",
        network=network,
        interface_ip=env.get("DOCKER_INTERFACE_IP"),
        mem_limit=parse_size(env.get("MEM_LIMIT"), "MEM_LIMIT"),
        cpu_limit=parse_cpus(env.get("CPU_LIMIT"), "CPU_LIMIT"),
        group_limits=parse_group_limits(env.get("GROUP_LIMITS")),
        pids_limit=_pids_limit(env),
        disk_quota=_disk_quota(env),
        debian_mirror=(env.get("DEBIAN_MIRROR") or apt_debian_mirror()).rstrip("/"),
        pip_index_url=env.get("PIP_INDEX_URL"),
    )
