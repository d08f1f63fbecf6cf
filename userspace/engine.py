"""The Docker engine as the hub and the course worker both need it: whether it answers, and which spawner
the hub uses (so the worker looks for homes where the hub puts them).

Rules (the hub's, hubconfig/docker.py): SPAWNER=docker|swarm|local in .env picks the spawner. Unset: docker
in prod; in dev docker when the engine answers and DOCKER_IMAGE, the users' network and the shared volumes
exist (build_image, setup_volumes), else local, and the hub's log says why (`choose_spawner`).
"""

from __future__ import annotations

import functools

from portal.config import Config

DOCKER_ENGINE_TIMEOUT = 5


def engine_unreachable(exc: BaseException) -> bool:
    """True when `exc` is the Docker engine not reached at all (no socket, connection refused or cut), not an
    answer that refused something; the SDK wraps a failed version check in a DockerException."""
    import requests

    return any(isinstance(e, requests.exceptions.ConnectionError) for e in (exc, exc.__cause__, exc.__context__))


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def engine_problem(image: str, network: str = "host", volumes: tuple[str, ...] = ()) -> str:
    """Why Docker cannot run `image` on `network` with the shared `volumes` here ("" when it can): the engine
    does not answer, or lacks the image, the network or a volume."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_ENGINE_TIMEOUT)
        client.ping()
    except Exception as exc:  # DockerException, requests' errors, a missing socket...
        return f"the Docker engine does not answer ({first_line(exc)})"
    try:
        client.images.get(image)
        if network != "host":
            client.networks.get(network)
        for volume in volumes:
            try:
                client.volumes.get(volume)
            except docker.errors.NotFound:
                return f"the Docker volume {volume} does not exist (python manage.py setup_volumes makes it)"
    except docker.errors.ImageNotFound:
        return f"the image {image} does not exist (python manage.py build_image makes it)"
    except docker.errors.NotFound:
        return f"the Docker network {network} does not exist (python manage.py setup_volumes makes it)"
    except Exception as exc:
        return f"the Docker engine failed to look up {image}, network {network} or the shared volumes ({exc})"
    finally:
        client.close()
    return ""


@functools.cache  # per Config: the hub's start asks twice (its log, its config); one Docker ping answers both
def choose_spawner(config: Config) -> tuple[str, str]:
    """(`docker`, `swarm` or `local`, why), for the hub's log, run.sh's banner and the course worker."""
    chosen = config.hub.spawner
    if chosen:
        return chosen, f"SPAWNER={chosen} in .env"
    if config.prod:
        return "docker", "APP_PROFILE=prod always uses Docker"
    cfg = config.containers
    problem = engine_problem(cfg.image, cfg.network, (cfg.data_volume, cfg.team_volume))
    if problem:
        return "local", f"SPAWNER is not set and {problem}"
    return "docker", f"SPAWNER is not set, the Docker engine answers and {cfg.image} exists"
