"""Where each student's home is, for every spawner, and the course worker's two ways into it. The file
operations themselves, and their rules, are in userspace/homefiles.py.

Homes:
- SPAWNER=local: the folder var/users/<name> (the hub's LocalHomeSpawner takes its template from here),
  owned by the machine user that runs the hub and the worker.
- SPAWNER=docker, and swarm with SWARM_VOLUMES=local: the Docker volume `jupyterhub-user-<name>`, named as
  DockerSpawner names it (portal.config.containers.user_volume).
- SPAWNER=swarm with SWARM_VOLUMES=shared or nfs://: the folder DATA_ROOT/volumes/<that volume's name>
  (hubconfig/swarm.py), owned by the notebook user (uid 1000, gid 100).

A home exists once the student's server has started once. The worker never makes one: Docker fills an empty
new volume with the image's home folder at its first mount, and the hub gives it its quota; a hand-out for a
student without a home waits ("waiting") and is delivered when the home appears. A home that exists but is
still empty (the hub has just made it, Docker has not filled it yet) is not ready for READY_AFTER seconds.

Access (COURSE_HOME_ACCESS, portal/config/course.py):
- direct: the worker opens a folder home itself (homefiles in this process). `auto` does so for a folder it
  may write (the local spawner; shared folders when the worker runs as root); files it makes get the
  notebook user's uid and gid when it runs as root.
- container: a short helper container of the notebook image reaches the home for the worker: `docker run
  --rm -i` with no network, no capabilities, no new privileges, as the notebook user (so what it writes is
  theirs), few processes and little memory, the home mounted at /home/jovyan, the hand-out's files read-only
  at /src and homefiles.py read-only at /opt/cfps/; the request is JSON on stdin, the answer JSON (or, for
  a copy, a tar stream) on stdout. Each is named after its home (`cfps-course-<volume>`), so two never work
  on one home at once, and one left behind by a killed worker is removed before the next starts. Docker
  volumes are always reached this way: their folders (/var/lib/docker/volumes, 0700 root) are root's
  alone, and the worker runs, like the hub, as the service user in the docker group, never as root.
  About 0.3 s per home on a 2-core machine.
- a batch (`Homes.batch`, COURSE_HELPER_BATCH homes, for a hand-out or a due-time collection of many students):
  one helper container, with the same limits, mounts every home of the batch at /homes/<n> and runs
  `homefiles.py serve`, answering the worker's requests for those homes one after another; the container's
  start, most of a helper's cost, is paid once per batch (tests/bench/course.py). Only homes that exist are
  mounted (a mount would make a missing volume). A request the helper cannot answer ends the batch: that home
  fails as a helper of its own would, and the rest of the batch gets helpers of their own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from portal.config import containers as ct
from portal.config.env import var_dir
from portal.config.swarm import VOLUMES_FOLDER
from userspace import homefiles
from userspace.homefiles import HomeError

LOCAL_HOMES = "users"  # under var/: the local spawner's homes
READY_AFTER = 60  # seconds an existing empty home is given to be filled by Docker
HELPER_LABEL = "org.cfps.managed-by=course-worker"
HELPER_PREFIX = "cfps-course-"
HELPER_TIMEOUT = 600
HELPER_MEMORY = "256m"
HELPER_PIDS = "64"
HOMEFILES = Path(homefiles.__file__).resolve()
IN_CONTAINER = "/opt/cfps/homefiles.py"


class EngineAway(HomeError):
    """The Docker engine does not answer: nothing was done, try again later."""

    def __init__(self, message: str):
        super().__init__("engine", message)


def local_home_template() -> str:
    """The local spawner's home_dir_template (hubconfig/config.py)."""
    return str(var_dir() / LOCAL_HOMES / "{username}")


@dataclass(frozen=True)
class Home:
    """A student's home: a folder on this machine, or a Docker volume."""

    username: str
    folder: Path | None = None
    volume: str | None = None

    def __str__(self):
        return str(self.folder) if self.folder else f"volume {self.volume}"


class Homes:
    """The homes of one configuration (`portal.config.load()`), and the worker's ways into them."""

    def __init__(self, config, spawner: str | None = None):
        from userspace.engine import choose_spawner

        self.containers = config.containers
        self.access = config.course.home_access
        self.spawner = spawner or choose_spawner(config)[0]
        self.swarm = config.swarm.volumes if self.spawner == "swarm" else None
        self.docker = shutil.which("docker") or "docker"
        self.batch_size = config.course.helper_batch
        self._session: _Session | None = None

    # --- where ----------------------------------------------------------------------------------------------
    def home(self, username: str) -> Home:
        if self.spawner == "local":
            return Home(username, folder=Path(local_home_template().format(username=username)))
        volume = ct.user_volume(username)
        if self.swarm and self.swarm.kind != "local":
            return Home(username, folder=self.containers.data_root / VOLUMES_FOLDER / volume)
        return Home(username, volume=volume)

    def direct(self, home: Home) -> bool:
        """Whether this process opens `home` itself (else through a helper container)."""
        if home.folder is None or self.access == "container":
            return False
        return self.access == "direct" or os.geteuid() == 0 or os.access(home.folder, os.W_OK | os.X_OK)

    def owner(self) -> tuple[int, int] | None:
        """Who files written directly must belong to: the notebook user in containers' homes, when we are root."""
        if self.spawner == "local" or os.geteuid() != 0:
            return None
        return ct.NOTEBOOK_UID, ct.NOTEBOOK_GID

    def ready(self, homes: list[Home], now: float | None = None) -> set[str]:
        """The usernames among `homes` whose home exists and may be written (module docstring)."""
        now = now or time.time()
        volumes = self._volumes() if any(home.volume for home in homes) else set()
        found = set()
        for home in homes:
            if home.volume:
                if home.volume in volumes:
                    found.add(home.username)
                continue
            try:
                info = home.folder.stat()
                empty = not any(os.scandir(home.folder))
            except OSError:
                continue
            if not empty or now - info.st_mtime > READY_AFTER:
                found.add(home.username)
        return found

    def _volumes(self) -> set[str]:
        prefix = ct.USER_VOLUME_TEMPLATE.split("{")[0]
        result = self._run([self.docker, "volume", "ls", "-q", "--filter", f"name={prefix}"])
        if result.returncode != 0:
            raise self._engine_error(result.stderr)
        return set(result.stdout.split())

    # --- what -----------------------------------------------------------------------------------------------
    def deliver(self, home: Home, dest: str, source: Path, files: dict[str, str], remembered: dict[str, str]) -> dict:
        """Deliver `files` of the bundle folder `source` into `dest` of `home` (homefiles.deliver's rules)."""
        if self.direct(home):
            fd = homefiles.open_home(home.folder)
            try:
                return homefiles.deliver(fd, dest, source, files, remembered, owner=self.owner())
            finally:
                os.close(fd)
        if self._session is not None and self._session.serves(home, source):
            try:
                return self._session.deliver(home, dest, files, remembered)
            except _SessionEnded:
                self._end_session()
                raise
        request = {"dest": dest, "files": files, "remembered": remembered}
        result = self._helper(home, "deliver", request, source=source)
        try:
            answer = json.loads(result.stdout)
        except ValueError:
            raise HomeError("helper", f"the helper container failed: {_last_line(result.stderr)}") from None
        if "error" in answer:
            error = answer["error"]
            raise HomeError(error.pop("code"), error.pop("message"), **error)
        return answer

    def collect(self, home: Home, folder: str, target: Path, max_bytes: int, max_files: int) -> dict:
        """Copy the folder `folder` of `home` into the new folder `target` on this machine (homefiles.collect's
        rules); returns its summary."""
        if self.direct(home):
            fd = homefiles.open_home(home.folder)
            try:
                return homefiles.collect(fd, folder, homefiles.FolderSink(target), max_bytes, max_files)
            finally:
                os.close(fd)
        request = {"folder": folder, "max_bytes": max_bytes, "max_files": max_files}
        if self._session is not None and self._session.serves(home, None):
            try:
                return self._session.collect(home, request, target, max_bytes, max_files)
            except _SessionEnded:
                self._end_session()
                raise
        return self._helper_collect(home, request, target, max_bytes, max_files)

    # --- a batch ------------------------------------------------------------------------------------------
    @contextmanager
    def batch(self, homes: list[Home], source: Path | None = None):
        """Serve the requests for `homes` (and `source`, a hand-out's files) from one helper container while
        the block runs (module docstring); without one when there is nothing to gain."""
        helped = [home for home in homes if not self.direct(home)]
        if self.batch_size < 2 or len(helped) < 2 or self._session is not None:
            yield self
            return
        ready = self.ready(helped)
        members = [home for home in helped if home.username in ready]
        if len(members) < 2:
            yield self
            return
        self._session = _Session(self, members, source)
        try:
            yield self
        finally:
            self._end_session()

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # --- the helper container -----------------------------------------------------------------------------
    def helper_name(self, home: Home) -> str:
        tag = home.volume or hashlib.sha256(str(home.folder).encode()).hexdigest()[:16]
        return HELPER_PREFIX + tag

    @staticmethod
    def _mount(home: Home, where: str) -> str:
        if home.volume:
            return f"type=volume,src={home.volume},dst={where}"
        return f"type=bind,src={home.folder},dst={where}"

    def _command(self, name: str, mounts: list[str], source: Path | None, args: list[str]) -> list[str]:
        command = [
            self.docker, "run", "--rm", "-i", "--name", name, "--label", HELPER_LABEL,
            "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", f"{ct.NOTEBOOK_UID}:{ct.NOTEBOOK_GID}", "--pids-limit", HELPER_PIDS, "--memory", HELPER_MEMORY,
            *(part for mount in mounts for part in ("--mount", mount)),
            "--mount", f"type=bind,src={HOMEFILES},dst={IN_CONTAINER},readonly",
        ]  # fmt: skip
        if source is not None:
            command += ["--mount", f"type=bind,src={Path(source).resolve()},dst={homefiles.CONTAINER_SOURCE},readonly"]
        return [*command, "--entrypoint", "python3", self.containers.image, "-I", IN_CONTAINER, *args]

    def _helper_command(self, home: Home, op: str, source: Path | None) -> list[str]:
        return self._command(self.helper_name(home), [self._mount(home, ct.HOME)], source, [op])

    def _batch_command(self, name: str, homes: list[Home], source: Path | None) -> list[str]:
        mounts = [self._mount(home, f"{homefiles.CONTAINER_HOMES}/{n}") for n, home in enumerate(homes)]
        return self._command(name, mounts, source, ["serve"])

    def _clear(self, home: Home) -> None:
        """Remove a helper a killed worker left working on this home."""
        self._run([self.docker, "rm", "-f", self.helper_name(home)])

    def _check_home(self, home: Home) -> None:
        if home.volume and self._run([self.docker, "volume", "inspect", home.volume]).returncode != 0:
            if home.volume in self._volumes():  # (raises when the engine does not answer)
                raise HomeError("helper", f"docker volume inspect {home.volume} failed")
            raise HomeError("no_home", f"the volume {home.volume} does not exist (the student never started a server)")
        if home.folder is not None and not home.folder.is_dir():
            raise HomeError("no_home", f"{home.folder} does not exist")

    def _helper(self, home: Home, op: str, request: dict, source: Path | None = None) -> subprocess.CompletedProcess:
        self._check_home(home)
        self._clear(home)
        result = self._run(self._helper_command(home, op, source), input=json.dumps(request).encode(), text=False)
        result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode(errors="replace")
        if result.returncode not in (0, homefiles.EXIT_HOME_ERROR):
            raise self._engine_error(result.stderr)
        return result

    def _helper_collect(self, home: Home, request: dict, target: Path, max_bytes: int, max_files: int) -> dict:
        self._check_home(home)
        self._clear(home)
        command = self._helper_command(home, "collect", None)
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
            )
            try:
                process.stdin.write(json.dumps(request).encode())
                process.stdin.close()
                summary = _untar(process.stdout, target, max_bytes, max_files)
                process.stdout.close()
                code = process.wait(timeout=HELPER_TIMEOUT)
            except BaseException:
                process.kill()
                process.wait()
                self._clear(home)
                raise
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if code == homefiles.EXIT_HOME_ERROR:
            try:
                error = json.loads(stderr.strip().splitlines()[-1])["error"]
            except (ValueError, KeyError, IndexError):
                raise HomeError("helper", f"the helper container failed: {_last_line(stderr)}") from None
            raise HomeError(error.pop("code"), error.pop("message"), **error)
        if code != 0 or summary is None:
            raise self._engine_error(stderr)
        return summary

    def _engine_error(self, stderr: str) -> HomeError:
        line = _last_line(stderr)
        if "Cannot connect to the Docker daemon" in stderr or "Is the docker daemon running" in stderr:
            return EngineAway(f"the Docker engine does not answer ({line})")
        return HomeError("helper", f"the helper container failed: {line}")

    def _run(self, command: list[str], input: bytes | None = None, text: bool = True) -> subprocess.CompletedProcess:
        try:
            # A session of its own: Ctrl-C or a stop of the worker's process group does not cut a copy in two; the
            # worker finishes its item, then stops.
            return subprocess.run(
                command, input=input, capture_output=True, text=text, timeout=HELPER_TIMEOUT, check=False,
                start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError:
            raise EngineAway("the docker command is missing (apt-get install docker.io)") from None
        except subprocess.TimeoutExpired:
            raise HomeError("helper", f"the helper container took more than {HELPER_TIMEOUT} s") from None


class _SessionEnded(HomeError):
    """A batch's helper container stopped answering: this home failed, the batch's others get helpers of their own."""


class _Frames(io.RawIOBase):
    """The framed bytes of one copy (homefiles.FrameWriter) read back as a plain stream."""

    def __init__(self, stream):
        self.stream = stream
        self.left = 0
        self.ended = False

    def readable(self):
        return True

    def readinto(self, buffer):
        while self.left == 0:
            if self.ended:
                return 0
            line = self.stream.readline()
            if not line.strip():
                raise _SessionEnded("helper", "the helper container stopped while sending a copy")
            self.left = int(line, 16)
            self.ended = self.left == 0
        data = self.stream.read(min(len(buffer), self.left))
        if not data:
            raise _SessionEnded("helper", "the helper container stopped while sending a copy")
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def drain(self) -> None:
        scratch = bytearray(homefiles.CHUNK)
        while self.readinto(scratch):
            pass


class _Session:
    """One helper container serving the homes of a batch (`homefiles.py serve`), one request at a time."""

    def __init__(self, homes: Homes, members: list[Home], source: Path | None):
        self.homes = homes
        self.members = {home.username: (n, home) for n, home in enumerate(members)}
        self.source = Path(source).resolve() if source is not None else None
        self.name = f"{HELPER_PREFIX}batch-{secrets.token_hex(6)}"
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                homes._batch_command(self.name, members, source), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.errors, start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError:
            self.errors.close()
            raise EngineAway("the docker command is missing (apt-get install docker.io)") from None

    def serves(self, home: Home, source: Path | None) -> bool:
        member = self.members.get(home.username)
        if member is None or member[1] != home or self.process.poll() is not None:
            return False
        return source is None or Path(source).resolve() == self.source

    def _stopped(self) -> HomeError:
        """Why the helper stopped answering: the engine is away (the item waits), or the helper failed (it fails)."""
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.errors.seek(0)
        error = self.homes._engine_error(self.errors.read().decode(errors="replace"))
        if isinstance(error, EngineAway):
            return error
        return _SessionEnded(error.code, str(error))

    def _send(self, request: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._stopped() from None

    def _line(self) -> dict:
        line = self.process.stdout.readline()
        if not line.strip():
            raise self._stopped()
        return json.loads(line)

    @contextmanager
    def _deadline(self):
        """A request that takes longer than a helper may (HELPER_TIMEOUT) ends the batch."""
        timer = threading.Timer(HELPER_TIMEOUT, self.process.kill)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    @staticmethod
    def _raise(answer: dict) -> None:
        error = answer["error"]
        raise HomeError(error.pop("code"), error.pop("message"), **error)

    def deliver(self, home: Home, dest: str, files: dict, remembered: dict) -> dict:
        with self._deadline():
            self._send({"op": "deliver", "home": self.members[home.username][0], "dest": dest, "files": files,
                        "remembered": remembered})  # fmt: skip
            answer = self._line()
        if "error" in answer:
            self._raise(answer)
        return answer["result"]

    def collect(self, home: Home, request: dict, target: Path, max_bytes: int, max_files: int) -> dict:
        with self._deadline():
            self._send({"op": "collect", "home": self.members[home.username][0], **request})
            if not self._line().get("stream"):
                raise _SessionEnded("helper", "the helper container answered out of turn")
            frames = _Frames(self.process.stdout)
            try:
                summary = _untar(frames, target, max_bytes, max_files)
                frames.drain()
            except HomeError:
                # The worker stopped reading in the middle (too large, an unexpected entry): the helper is still
                # sending, so this batch is over; the item fails or is done again as a helper of its own would.
                self.close()
                raise
            answer = self._line()
        if "error" in answer:
            self._raise(answer)
        if summary is None:
            raise _SessionEnded("helper", "the helper container sent an incomplete copy")
        return summary

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.returncode not in (0, None):
            self.homes._run([self.homes.docker, "rm", "-f", self.name])
        self.errors.close()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _untar(stream, target: Path, max_bytes: int, max_files: int) -> dict | None:
    """Unpack a helper's copy (`files/<path>` members, then `summary.json`) into the new folder `target`, with the
    same limits and no trust in its names: only regular files under safe relative paths. Returns the summary,
    or None when the stream ended without one (the helper failed; its exit code says why)."""
    sink = homefiles.FolderSink(target)
    files, size, summary = [], 0, None
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.name == "summary.json" and member.isfile() and member.size < 10 * 1024**2:
                    summary = json.loads(tar.extractfile(member).read())
                    continue
                rel = member.name.removeprefix("files/")
                parts = rel.split("/")
                if not member.isfile() or rel == member.name or any(p in ("", ".", "..") for p in parts):
                    raise HomeError("helper", f"the helper container sent an unexpected entry {member.name!r}")
                if len(files) >= max_files:
                    raise HomeError("too_many_files", "the folder has more files than the limit", limit=max_files)
                reader = tar.extractfile(member)
                got, sha = sink.add(rel, reader.read, max_bytes - size, member.size)
                size += got
                if size > max_bytes:
                    raise HomeError("too_big", "the folder is larger than the limit", size=size, limit=max_bytes)
                files.append({"path": rel, "size": got, "sha256": sha})
    except tarfile.ReadError:
        return None
    if summary is None:
        return None
    return {"files": files, "skipped": summary.get("skipped", []), "size": size}
