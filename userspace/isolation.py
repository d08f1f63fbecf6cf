"""What keeps the users' containers apart, through the Docker SDK: their network and the disk quota.

Used by `python manage.py setup_volumes` (which creates the network) and by the hub's spawner
(`hubconfig/docker.py`, which checks it and applies the quota). Settings: portal/config/containers.py.

Rules:
- The users' network (DOCKER_NETWORK, default `cfps-users`) is a local bridge with inter-container traffic
  off (`com.docker.network.bridge.enable_icc=false`): Docker then drops every packet from one container of
  the network to another, while the host (the hub, the dataset server, the proxy reaching each server's
  published port on 127.0.0.1) stays reachable both ways. Its interface is `br-<id>`, which the firewall's
  default `br-+` covers.
- An existing network is never changed: one that lets containers talk is reported (`network_problem`), so
  the operator decides; `host` and Docker's default `bridge` are reported the same way.
- The quota (USER_DISK_QUOTA) has two parts, each applied only where the engine supports it: the `size`
  option of the users' `local` home volumes and `--storage-opt size` of their containers' writable layer.
  Both need Docker's root on xfs mounted with pquota; support is found by asking the engine (a probe volume
  and a probe container, created and removed at once), never guessed from version numbers.
"""

from __future__ import annotations

import secrets

from portal.config import containers
from portal.config.table import BY_NAME

MANAGED_LABEL = "org.cfps.managed-by"
PROBE_PREFIX = "cfps-quota-probe-"


class NetworkError(RuntimeError):
    """The users' network cannot be used as asked; the message is one line meant for an operator."""


def network_problem(client, name: str) -> str:
    """Why containers on network `name` can reach each other ("" when they cannot)."""
    import docker

    if name == "host":
        return "DOCKER_NETWORK=host: containers share this machine's network and reach each other (for tests only)"
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        return f"Docker network {name} does not exist: python manage.py setup_volumes creates it"
    options = network.attrs.get("Options") or {}
    if network.attrs.get("Driver") != "bridge" or options.get(containers.ICC_OPTION) != "false":
        return (
            f"Docker network {name} lets containers reach each other (inter-container traffic is on); "
            f"use a network made by setup_volumes, e.g. DOCKER_NETWORK={BY_NAME['DOCKER_NETWORK'].default_for('dev')}"
        )
    return ""


def subnets(network) -> str:
    """The network's IPv4 subnets, for the operator: DATASET_USER_HOST must cover them (its default,
    172.16.0.0/12, holds Docker's first address pools) and DOCKER_INTERFACE_IP is their gateway."""
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    return ", ".join(c["Subnet"] for c in configs if c.get("Subnet") and ":" not in c["Subnet"]) or "no IPv4 subnet"


def ensure_users_network(client, name: str, dry_run: bool = False) -> str:
    """Create the users' bridge network with inter-container traffic off. Returns what it did, one line;
    raises NetworkError when an existing network of that name lets containers reach each other."""
    import docker

    if name == "host":
        return f"network host: {network_problem(client, name)}"
    try:
        client.networks.get(name)
    except docker.errors.NotFound:
        if dry_run:
            return f"would create network {name} (bridge, inter-container traffic off)"
        network = client.networks.create(
            name,
            driver="bridge",
            options={containers.ICC_OPTION: "false"},
            labels={MANAGED_LABEL: "setup_volumes"},
        )
        network.reload()  # the create answer has no addresses yet
        return f"created network {name} (bridge, inter-container traffic off, {subnets(network)})"
    problem = network_problem(client, name)
    if problem:
        raise NetworkError(problem)
    network = client.networks.get(name)
    return f"network {name} (bridge, inter-container traffic off, {subnets(network)}): exists, unchanged"


def _first_line(exc) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split()) or type(exc).__name__


def volume_quota_problem(client, size: str) -> str:
    """Why the engine cannot give a `local` volume a `size` ("" when it can)."""
    import docker

    name = PROBE_PREFIX + secrets.token_hex(4)
    try:
        client.volumes.create(name=name, driver="local", driver_opts={"size": size}, labels={MANAGED_LABEL: "probe"})
    except docker.errors.APIError as exc:
        return _first_line(exc).removeprefix(f"create {name}: ")  # the probe's name means nothing to anyone
    client.volumes.get(name).remove(force=True)
    return ""


def layer_quota_problem(client, image: str, size: str) -> str:
    """Why the engine cannot limit a container's writable layer to `size` ("" when it can). The probe
    container is only created, never started."""
    import docker

    name = PROBE_PREFIX + secrets.token_hex(4)
    try:
        probe = client.containers.create(
            image, ["true"], name=name, network_mode="none", storage_opt={"size": size}, labels={MANAGED_LABEL: "probe"}
        )
    except docker.errors.APIError as exc:
        return _first_line(exc)
    probe.remove(force=True)
    return ""


def quota_report(client, image: str, size: str) -> tuple[bool, bool, list[str]]:
    """(home volumes get the quota, writable layers get it, one line per part that does not)."""
    lines = []
    volume_problem = volume_quota_problem(client, size)
    if volume_problem:
        lines.append(
            f"USER_DISK_QUOTA={size} is not enforced on the home volumes: the engine refuses a sized volume "
            f"({volume_problem}); it needs Docker's root on xfs mounted with pquota"
        )
    layer_problem = layer_quota_problem(client, image, size)
    if layer_problem:
        lines.append(
            f"USER_DISK_QUOTA={size} is not enforced on the containers' own files: the engine refuses "
            f"--storage-opt size ({layer_problem})"
        )
    return not volume_problem, not layer_problem, lines


def create_sized_volume(client, name: str, size: str) -> bool:
    """Create a user's home volume with the quota when it does not exist yet (Docker would create it without
    one on first mount). Returns whether it created it; an existing volume keeps whatever it has."""
    import docker

    try:
        client.volumes.get(name)
        return False
    except docker.errors.NotFound:
        pass
    client.volumes.create(name=name, driver="local", driver_opts={"size": size}, labels={MANAGED_LABEL: "hub"})
    return True
