"""Build the notebook image without Docker Hub: debootstrap a minimal Debian, add a venv with
singleuser/image/requirements.txt, `docker import` the result. `python manage.py build_image` drives it.

Why: campus servers often cannot pull from Docker Hub or quay.io, but they do reach a Debian mirror and a
PyPI index (both configurable). singleuser/image/Dockerfile builds the same image where pulling works.

Stages, all under var/image-build/ (CFPS_VAR_DIR moves it):
    base-<key>/   debootstrap of Debian SUITE (minbase + python3, python3-venv, ca-certificates); kept, so
                  later builds skip it. The key covers the suite, architecture and package list, not the
                  mirror (any mirror gives the same system).
    wheels-<hash>/ the image's wheels, downloaded by THIS machine's pip (so its configuration, or
                  PIP_INDEX_URL, applies) for the target's Python, libc and CPU; the chroot needs no network.
    rootfs/       a copy of base with /opt/venv, user jovyan (uid 1000, gid 100), JupyterLab's
                  overrides.json and options, and the servers' entry point cfps-singleuser; tarred and imported, then
                  deleted.

Rules:
- The input hash covers requirements.txt, the lab settings and options, cfps-singleuser, the suite and package list and this file's
  own source, so any change to the recipe rebuilds. The image carries it as a label and an extra tag
  (`<repository>:inputs-<12 hex>`); when that image exists, the build is skipped entirely.
- One build at a time per var/ (a lock file); a second one waits.
- Errors are BuildError with one line for the operator.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.dataset import KERNEL_CONFIG
from portal.config import containers
from portal.config.env import BASE_DIR, var_dir

SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
VENV = "/opt/venv"
REQUIREMENTS = BASE_DIR / "singleuser" / "image" / "requirements.txt"
LAB_OVERRIDES = BASE_DIR / "hubconfig" / "lab_settings" / "overrides.json"
# JupyterLab reads overrides.json from its application settings folder, <sys.prefix>/share/jupyter/lab/settings.
IMAGE_OVERRIDES = f"{VENV}/share/jupyter/lab/settings/overrides.json"
# The servers' JupyterLab options (hubconfig/config.py, LAB_CONFIG, says which and why), from the environment's
# Jupyter configuration folder: a server started in the image any other way reads them too.
LAB_CONFIG = BASE_DIR / "hubconfig" / "lab_settings" / "jupyter_lab_config.json"
IMAGE_LAB_CONFIG = f"{VENV}/etc/jupyter/jupyter_lab_config.json"
# IPython reads this for every kernel (preloads, the dataset helpers; see portal/config/dataset.py).
IMAGE_KERNEL_CONFIG = "/etc/ipython/ipython_kernel_config.py"
# What the hub starts in every container (hubconfig/docker.py): jupyterhub-singleuser without unused imports.
SINGLEUSER_SCRIPT = BASE_DIR / "singleuser" / "image" / "cfps_singleuser.py"
IMAGE_SINGLEUSER = "/usr/local/bin/cfps-singleuser"
HASH_LABEL = "org.cfps.image-inputs"
HASH_TAG_PREFIX = "inputs-"
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_ROOT_USER_ACTION": "ignore",
}


class BuildError(RuntimeError):
    """The build cannot go on; the message is one line meant for an operator."""


def work_dir() -> Path:
    return var_dir() / "image-build"


def split_image(image: str) -> tuple[str, str]:
    """`registry:5000/name:tag` → (`registry:5000/name`, `tag`); no tag means `latest`."""
    if ":" in image.rsplit("/", 1)[-1]:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, "latest"


def image_changes(input_hash: str) -> list[str]:
    """The Dockerfile instructions `docker import --change` applies to the imported root file system."""
    home = containers.HOME
    return [
        f"USER {containers.NOTEBOOK_USER}",
        f"WORKDIR {home}",
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"ENV VIRTUAL_ENV={VENV}",
        "ENV LANG=C.UTF-8",
        "ENV LC_ALL=C.UTF-8",
        f"ENV HOME={home}",
        "ENV SHELL=/bin/bash",
        "EXPOSE 8888",
        f"LABEL {HASH_LABEL}={input_hash}",
        'CMD ["jupyterhub-singleuser"]',
    ]


def base_key(arch: str) -> str:
    return hashlib.sha256(json.dumps([SUITE, arch, "minbase", sorted(DEBIAN_PACKAGES)]).encode()).hexdigest()[:12]


def input_hash(arch: str) -> str:
    digest = hashlib.sha256()
    for part in (
        SUITE.encode(),
        arch.encode(),
        " ".join(sorted(DEBIAN_PACKAGES)).encode(),
        REQUIREMENTS.read_bytes(),
        LAB_OVERRIDES.read_bytes(),
        LAB_CONFIG.read_bytes(),
        SINGLEUSER_SCRIPT.read_bytes(),
        KERNEL_CONFIG.read_bytes() if KERNEL_CONFIG.exists() else b"",
        Path(__file__).read_bytes(),
        "\n".join(image_changes("")).encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def host_arch() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise BuildError("dpkg --print-architecture failed: build_image needs a Debian or Ubuntu host") from None


def docker_client(timeout: int = 600):
    """A Docker SDK client that answered a ping, else BuildError."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # the SDK raises several types (DockerException, requests errors)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BuildError(
            f"the Docker engine does not answer ({reason}); install it (apt-get install docker.io) and start it"
        ) from None
    return client


def find_built_image(client, repository: str, digest: str):
    """The image already built from these inputs, or None."""
    import docker

    try:
        image = client.images.get(f"{repository}:{HASH_TAG_PREFIX}{digest[:12]}")
    except docker.errors.ImageNotFound:
        return None
    return image if image.labels.get(HASH_LABEL) == digest else None


def _short(image) -> str:
    return image.id.split(":")[-1][:12]


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Builder:
    """One run of the build. `say` prints a progress line; at `verbosity` >= 2 the output of debootstrap,
    pip and tar is passed through, else it goes to var/image-build/build.log (its tail is shown on failure)
    and a line every 30 s says what is still running."""

    image: str
    mirror: str
    index_url: str
    say: Callable[[str], None]
    verbosity: int = 1
    force: bool = False
    dry_run: bool = False

    def __post_init__(self):
        self.work = work_dir()
        self.log_path = self.work / "build.log"
        self.repository, self.tag = split_image(self.image)

    # --- the whole build ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Build (or find) the image; returns a one-line summary."""
        arch = host_arch()
        digest = input_hash(arch)
        client = docker_client()
        existing = None if self.force else find_built_image(client, self.repository, digest)
        if existing is not None:
            if self.image not in existing.tags:
                if self.dry_run:
                    return f"would tag the existing image {_short(existing)} as {self.image} (inputs unchanged)"
                existing.tag(self.repository, self.tag)
            return f"{self.image} is up to date ({_short(existing)}, inputs {digest[:12]}); nothing to build"
        base = self.work / f"base-{base_key(arch)}"
        base_done = base.with_name(base.name + ".done")
        stages = (
            ["debootstrap (first time only, a minute or more)"] if self.force or not base_done.exists() else []
        ) + [
            "download wheels",
            "venv",
            "user and settings",
            "docker import",
        ]
        if self.dry_run:
            return f"would build {self.image} (inputs {digest[:12]}) in {self.work}: {', '.join(stages)}"
        if os.geteuid() != 0:
            raise BuildError("build_image must run as root: debootstrap and chroot need it (try sudo)")
        self.work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self._lock():
            # A build that waited for the lock may find the image the other one made.
            existing = None if self.force else find_built_image(client, self.repository, digest)
            if existing is not None:
                existing.tag(self.repository, self.tag)
                return f"{self.image} was built meanwhile ({_short(existing)}); nothing to build"
            self.log_path.write_text("")
            total = len(stages)
            step = iter(range(1, total + 1))
            if self.force or not base_done.exists():
                self._debootstrap(base, base_done, arch, f"[{next(step)}/{total}]")
            else:
                self.say(f"Debian {SUITE} base system: cached in {self._show(base)}")
            python = self._target_python(base)
            wheels = self._download_wheels(digest, python, f"[{next(step)}/{total}]")
            rootfs = self.work / "rootfs"
            self._venv(base, rootfs, wheels, f"[{next(step)}/{total}]")
            self._user_and_settings(rootfs, f"[{next(step)}/{total}]")
            image = self._import(client, rootfs, digest, f"[{next(step)}/{total}]")
            self._cleanup(client, base, digest)
        size = image.attrs.get("Size", 0) / 1e6
        return f"built {self.image} ({_short(image)}, {size:.0f} MB, inputs {digest[:12]}) in {_elapsed(time.monotonic() - started)}"

    # --- stages ---------------------------------------------------------------------------------------------
    def _debootstrap(self, base: Path, done: Path, arch: str, step: str) -> None:
        if not shutil.which("debootstrap"):
            raise BuildError("debootstrap is not installed: apt-get install debootstrap")
        self._check_mirror()
        done.unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)  # a half-finished earlier run
        self.say(
            f"{step} debootstrap Debian {SUITE} ({arch}, minbase + {', '.join(DEBIAN_PACKAGES)}) from {self.mirror}"
        )
        self._run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                SUITE,
                str(base),
                self.mirror,
            ],
            "debootstrap",
        )
        # Package downloads and indexes are not part of the image.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (base / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        done.write_text(self.mirror + "\n")

    def _check_mirror(self) -> None:
        if not self.mirror:
            raise BuildError(
                "no Debian mirror: set DEBIAN_MIRROR in .env (none found in this machine's apt sources either)"
            )
        url = f"{self.mirror}/dists/{SUITE}/Release"
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                response.read(1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BuildError(
                f"DEBIAN_MIRROR {self.mirror} is unreachable ({reason} for {url}); set DEBIAN_MIRROR in .env "
                "to a Debian mirror this machine can reach"
            ) from None

    def _target_python(self, base: Path) -> dict:
        script = (
            "import json, platform, sys; "
            "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
            "'libc': platform.libc_ver()[1], 'machine': platform.machine()}))"
        )
        result = self._chroot_capture(base, ["python3", "-c", script])
        return json.loads(result.strip().splitlines()[-1])

    def _download_wheels(self, digest: str, python: dict, step: str) -> Path:
        wheels = self.work / f"wheels-{digest[:12]}"
        for old in self.work.glob("wheels-*"):
            if old != wheels:
                shutil.rmtree(old, ignore_errors=True)
        wheels.mkdir(exist_ok=True)
        version = python["version"]
        abi = "cp" + version.replace(".", "")
        libc_minor = int(python["libc"].split(".")[1])
        machine = python["machine"]
        platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(libc_minor, 4, -1)]
        platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
        source = f"PIP_INDEX_URL {self.index_url}" if self.index_url else "pip's own configuration"
        self.say(f"{step} Downloading wheels for Python {version} ({machine}, glibc {python['libc']}) from {source}")
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(wheels)]
        cmd += ["--only-binary=:all:", "--implementation", "cp", "--python-version", version, "--abi", abi]
        for platform in platforms:
            cmd += ["--platform", platform]
        if self.index_url:
            cmd += ["--index-url", self.index_url]
        cmd += ["-r", str(REQUIREMENTS)]
        self._run(cmd, "pip download", hint="a package without a wheel for this platform, or an unreachable index")
        return wheels

    def _venv(self, base: Path, rootfs: Path, wheels: Path, step: str) -> None:
        self.say(f"{step} Creating {VENV} in a copy of the base system and installing the wheels")
        shutil.rmtree(rootfs, ignore_errors=True)
        self._run(["cp", "-a", "--reflink=auto", str(base), str(rootfs)], "copy of the base system")
        inside = rootfs / "tmp" / "cfps-wheels"
        inside.mkdir(parents=True)
        for wheel in wheels.iterdir():
            try:
                os.link(wheel, inside / wheel.name)
            except OSError:
                shutil.copy2(wheel, inside / wheel.name)
        shutil.copy2(REQUIREMENTS, rootfs / "tmp" / "cfps-requirements.txt")
        self._chroot(rootfs, ["python3", "-m", "venv", VENV], "python3 -m venv")
        self._chroot(
            rootfs,
            [f"{VENV}/bin/pip", "install", "--no-index", "--find-links", "/tmp/cfps-wheels"]
            + ["-r", "/tmp/cfps-requirements.txt"],
            "pip install",
        )
        shutil.rmtree(inside)
        (rootfs / "tmp" / "cfps-requirements.txt").unlink()
        self._chroot(rootfs, [f"{VENV}/bin/jupyterhub-singleuser", "--version"], "jupyterhub-singleuser --version")

    def _user_and_settings(self, rootfs: Path, step: str) -> None:
        self.say(
            f"{step} Adding user {containers.NOTEBOOK_USER} (uid {containers.NOTEBOOK_UID}), JupyterLab's "
            "Chinese defaults and the servers' entry point cfps-singleuser"
        )
        self._chroot(
            rootfs,
            ["useradd", "--create-home", "--uid", str(containers.NOTEBOOK_UID), "--gid", str(containers.NOTEBOOK_GID)]
            + ["--shell", "/bin/bash", containers.NOTEBOOK_USER],
            "useradd",
        )
        for source, target in ((LAB_OVERRIDES, IMAGE_OVERRIDES), (LAB_CONFIG, IMAGE_LAB_CONFIG)):
            installed = rootfs / target.lstrip("/")
            installed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, installed)
            installed.chmod(0o644)
        if KERNEL_CONFIG.exists():
            kernel_config = rootfs / IMAGE_KERNEL_CONFIG.lstrip("/")
            kernel_config.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(KERNEL_CONFIG, kernel_config)
            kernel_config.chmod(0o644)
        singleuser = rootfs / IMAGE_SINGLEUSER.lstrip("/")
        shutil.copy2(SINGLEUSER_SCRIPT, singleuser)
        singleuser.chmod(0o755)
        self._chroot(rootfs, ["env", f"PATH={VENV}/bin:{CHROOT_ENV['PATH']}", "cfps-singleuser", "--version"],
                     "cfps-singleuser --version")  # fmt: skip
        for leftover in (rootfs / "root" / ".cache", *(rootfs / "tmp").iterdir()):
            shutil.rmtree(leftover, ignore_errors=True)

    def _import(self, client, rootfs: Path, digest: str, step: str):
        tarball = self.work / "rootfs.tar"
        self.say(f"{step} Importing the root file system into Docker as {self.image}")
        self._run(
            ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(rootfs), "-cf", str(tarball), "."],
            "tar",
        )
        try:
            client.api.import_image_from_file(
                str(tarball), repository=self.repository, tag=self.tag, changes=image_changes(digest)
            )
            image = client.images.get(self.image)
            if image.labels.get(HASH_LABEL) != digest:
                raise BuildError(f"docker import did not label {self.image} with the input hash")
            image.tag(self.repository, f"{HASH_TAG_PREFIX}{digest[:12]}")
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"docker import failed: {str(exc).splitlines()[0]}") from None
        finally:
            tarball.unlink(missing_ok=True)
        shutil.rmtree(rootfs, ignore_errors=True)
        return client.images.get(self.image)

    def _cleanup(self, client, base: Path, digest: str) -> None:
        """Drop other base systems and the images of earlier inputs (untagging; an image a running
        container uses stays until it stops)."""
        for old in self.work.glob("base-*"):
            if old.name in {base.name, base.name + ".done"}:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        keep = f"{self.repository}:{HASH_TAG_PREFIX}{digest[:12]}"
        for image in client.images.list(name=self.repository):
            for tag in image.tags:
                if tag.startswith(f"{self.repository}:{HASH_TAG_PREFIX}") and tag != keep:
                    try:
                        client.images.remove(tag)
                        self.say(f"  removed the earlier image {tag}")
                    except Exception as exc:
                        self.say(f"  kept the earlier image {tag}: {str(exc).splitlines()[0]}")

    # --- helpers --------------------------------------------------------------------------------------------
    def _show(self, path: Path) -> str:
        try:
            return str(path.relative_to(BASE_DIR))
        except ValueError:
            return str(path)

    def _lock(self):
        lock = open(self.work / ".lock", "w")  # noqa: SIM115 - closed by the context manager below
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.say("Another build_image is running here; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _chroot(self, rootfs: Path, cmd: list[str], what: str) -> None:
        self._run(["chroot", str(rootfs), *cmd], what, env=CHROOT_ENV)

    def _chroot_capture(self, rootfs: Path, cmd: list[str]) -> str:
        result = subprocess.run(["chroot", str(rootfs), *cmd], env=CHROOT_ENV, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"`{' '.join(cmd)}` failed in {rootfs}: {result.stderr.strip()[-300:]}")
        return result.stdout

    def _run(self, cmd: list[str], what: str, env: dict | None = None, hint: str = "") -> None:
        """Run `cmd`; its output goes to the log (and through, at verbosity >= 2). A line every 30 s while
        it runs, the stage's time when it ends; BuildError with the log's tail when it fails."""
        started = time.monotonic()
        last_line = [""]
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as exc:
                raise BuildError(f"{what}: cannot run {cmd[0]}: {exc.strerror}") from None
            stop = threading.Event()
            if self.verbosity < 2:
                threading.Thread(target=self._heartbeat, args=(what, started, last_line, stop), daemon=True).start()
            try:
                for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace").rstrip()
                    log.write(line + "\n")
                    if line.strip():
                        last_line[0] = line.strip()
                    if self.verbosity >= 2:
                        self.say(f"    {line}")
                proc.wait()
            finally:
                stop.set()
        if proc.returncode != 0:
            tail = " | ".join(
                line for line in self.log_path.read_text(errors="replace").splitlines()[-6:] if line.strip()
            )
            hint = f" (likely {hint})" if hint else ""
            raise BuildError(
                f"{what} failed with exit {proc.returncode}{hint}; log {self._show(self.log_path)} ends: {tail[-600:]}"
            )
        if time.monotonic() - started > 5:
            self.say(f"  {what}: done in {_elapsed(time.monotonic() - started)}")

    def _heartbeat(self, what: str, started: float, last_line: list[str], stop: threading.Event) -> None:
        while not stop.wait(30):
            self.say(f"  ... {what} running for {_elapsed(time.monotonic() - started)}: {last_line[0][:100]}")
