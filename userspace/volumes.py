"""The Docker volumes of the notebook containers, through the Docker SDK (no shell strings).

Used by `python manage.py setup_volumes` (the shared data and team volumes) and by the hub's spawner
(`hubconfig/docker.py`, one team volume per portal group). Layout and names: portal/config/containers.py.

Rules:
- A shared volume is a `local` volume bound onto a folder under DATA_ROOT, so its files are plain files an
  operator can back up or edit. An existing volume bound elsewhere is never changed: VolumeError says so.
- Every folder a student writes to belongs to the notebook user (uid 1000, gid 100, mode 2775). The
  ownership is set by a short container of the notebook image running as root, so neither the hub nor this
  command needs to be root on the host.
"""

from __future__ import annotations

from pathlib import Path

from portal.config import containers

MANAGED_LABEL = "org.cfps.managed-by"
ROOT_MODE = 0o2775


class VolumeError(RuntimeError):
    """A volume cannot be used as asked; the message is one line meant for an operator."""


def bind_options(folder: Path) -> dict[str, str]:
    return {"type": "none", "o": "bind", "device": str(folder)}


def ensure_bind_volume(client, name: str, folder: Path, dry_run: bool = False) -> str:
    """Make `name` a local volume bound onto `folder`. Returns what it did, one line."""
    import docker

    folder = Path(folder).resolve()
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        if dry_run:
            return f"would create volume {name} -> {folder}"
        folder.mkdir(parents=True, exist_ok=True)
        client.volumes.create(
            name=name, driver="local", driver_opts=bind_options(folder), labels={MANAGED_LABEL: "setup_volumes"}
        )
        return f"created volume {name} -> {folder}"
    options = volume.attrs.get("Options") or {}
    if volume.attrs.get("Driver") != "local" or options.get("o") != "bind" or options.get("device") != str(folder):
        where = options.get("device") or f"Docker's own storage ({volume.attrs.get('Mountpoint', '?')})"
        raise VolumeError(
            f"volume {name} already exists and points to {where}, not {folder}: stop the servers that use it and "
            f"remove it (docker volume rm {name}), or pick another name or DATA_ROOT in .env"
        )
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)  # a bind volume onto a missing folder cannot be mounted
    return f"volume {name} -> {folder}: exists, unchanged"


def owned_by_notebook_user(folder: Path) -> bool:
    try:
        stat = Path(folder).stat()
    except FileNotFoundError:
        return False
    return (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (
        containers.NOTEBOOK_UID,
        containers.NOTEBOOK_GID,
        ROOT_MODE,
    )


def give_to_notebook_user(client, image: str, volume: str) -> None:
    """chown/chmod the root of `volume` for the notebook user, from a throwaway root container of `image`
    without network. Raises VolumeError when the image is missing or the container fails."""
    import docker

    owner = f"{containers.NOTEBOOK_UID}:{containers.NOTEBOOK_GID}"
    try:
        client.containers.run(
            image,
            ["sh", "-c", f"chown {owner} /volume && chmod {ROOT_MODE:o} /volume"],
            user="0",
            entrypoint=[],
            network_mode="none",
            volumes={volume: {"bind": "/volume", "mode": "rw"}},
            labels={MANAGED_LABEL: "chown"},
            remove=True,
        )
    except docker.errors.ImageNotFound:
        raise VolumeError(f"the notebook image {image} is missing: run python manage.py build_image") from None
    except docker.errors.ContainerError as exc:
        raise VolumeError(f"could not give volume {volume} to uid {owner}: {exc.stderr!r}") from None


def ensure_team_volume(client, image: str, group: str) -> str:
    """The read-write volume of one portal group, created on first use and given to the notebook user.
    Returns its name."""
    import docker

    name = containers.group_volume(group)
    try:
        client.volumes.get(name)
        return name
    except docker.errors.NotFound:
        pass
    client.volumes.create(name=name, driver="local", labels={MANAGED_LABEL: "hub", "org.cfps.group": group})
    try:
        give_to_notebook_user(client, image, name)
    except Exception:
        # Never leave a root-owned team folder behind: the next start tries again.
        client.volumes.get(name).remove(force=True)
        raise
    return name
