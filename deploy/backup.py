"""One archive with everything a term's work lives in, and putting it back (`manage.py backup` / `restore`).

An archive is an uncompressed tar, `cfps-backup-<UTC time>.tar`, mode 0600 from the moment it is created,
whose members are:

    portal-db.sqlite3 | portal-db.sql   the portal database: a SQLite snapshot through the backup API, or
                                        `mariadb-dump --single-transaction` (one consistent InnoDB snapshot)
    hub-db.sqlite3                      the hub's SQLite database, through the backup API
    files/<key>                         .env, every file of var/secrets/, the hub's cookie secret, the OIDC
                                        signing key (OIDC_RSA_PRIVATE_KEY_FILE) when it lives outside .env
    dirs/<key>.tar.gz                   local-mode homes (var/users/) and the local team folder
    volumes/<name>.tar.gz               a Docker volume (users' homes, the team volume, group volumes), read
                                        by a short-lived container of the notebook image without network
    manifest.json                       last: every member's kind, size and sha256, and where it came from

Rules:
- Everything is read while the system runs: databases through their consistent-snapshot mechanisms (never
  a copy of a live file), volumes read-only. A file that changes while it is read is still archived (a
  volume is as consistent as `tar` makes it); a warning says so.
- `restore` verifies every checksum before it changes anything, refuses an archive with a member the manifest
  does not list, and restores into what the *current* configuration names (its database, its var/), so a
  fresh clone restores into its own folders. Paths under the archived var/ (a bind volume's folder, the
  local homes' links) move with var/.
- Nothing is written world- or group-readable: the archive, its scratch space and every restored secret.
- `restore` runs as root, so an archive is not trusted beyond its contents (`Archive.verify`, before anything
  changes; one line names what is refused): only the member names `backup` writes (the table above, with
  names and keys of the forms it makes: no `/`, no `..`, no absolute path), each a plain file once (no
  symlink, hard link, device or folder); every manifest part consistent with its member; inside a local
  folder's tarball no device, fifo or hard link leading out of it, and nothing outside the folder
  (symlinks stay: the homes' links to the shared data); a volume only by a Docker volume name, on the
  local driver, plain, sized, NFS or bound to a folder under the current var/ or DATA_ROOT (never a host
  device or another host path, which a root container would write); the OIDC key file only where the
  restored .env names it. The SQL dump is loaded by the `mariadb` client in `--sandbox` mode, which refuses
  the client's shell (`\\!`) and file commands inside a dump; a client without that mode is refused.

This module imports nothing from Django; the management commands gather what to save from settings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import hashlib
import io
import json
import os
import pwd
import re
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = 1
MANIFEST = "manifest.json"
# Names `backup` gives: secrets' file names, Docker volume names (as Docker itself allows them).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
FILE_KEYS = ("env", "oidc-key", "hub-cookie-secret")
CHUNK = 1024 * 1024
CONTAINER_LABEL = "org.cfps.managed-by=backup"
# Where a volume is mounted inside the short-lived container; `tar --numeric-owner` keeps uid 1000's files
# uid 1000's even when the names differ between the image and the host.
MOUNT = "/v"

Say = Callable[[str], None]


class BackupError(RuntimeError):
    """Backup or restore cannot go on; the message is one line meant for an operator."""


class IncompleteBackup(BackupError):
    """The archive was written but lacks a part it should have (e.g. the engine was down)."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} was written, but {why}")
        self.path = path


@dataclass
class Sources:
    """What `backup` saves, resolved from settings by the command."""

    var_dir: Path
    database: dict  # Django's DATABASES["default"]
    env_file: Path | None = None
    oidc_key_file: Path | None = None
    image: str = ""
    volumes: list[str] = field(default_factory=list)  # candidate names; those that exist are saved
    docker_required: bool = False  # SPAWNER=docker/swarm: an unreachable engine is an error, not a skip
    with_homes: bool = True
    course_root: Path | None = None  # COURSE_ROOT: uploaded material and collected hand-ins (default var/course)

    @property
    def hub_db(self) -> Path:
        return self.var_dir / "hub" / "jupyterhub.sqlite"

    def local_dirs(self) -> dict[str, Path]:
        return local_dirs(self.var_dir, self.course_root)

    def staff_dirs(self) -> dict[str, Path]:
        """Folders kept even --without-homes: what staff made and collected (the course's material and hand-ins)."""
        return {key: path for key, path in self.local_dirs().items() if key in STAFF_DIRS}

    def secret_files(self) -> dict[str, Path]:
        files = {}
        if self.env_file is not None and self.env_file.is_file():
            files["env"] = self.env_file
        secrets_dir = self.var_dir / "secrets"
        if secrets_dir.is_dir():
            for path in sorted(secrets_dir.iterdir()):
                if path.is_file():
                    files[f"secret-{path.name}"] = path
        cookie = self.var_dir / "hub" / "jupyterhub_cookie_secret"
        if cookie.is_file():
            files["hub-cookie-secret"] = cookie
        if self.oidc_key_file is not None:
            if not self.oidc_key_file.is_file():
                raise BackupError(f"OIDC_RSA_PRIVATE_KEY_FILE={self.oidc_key_file} is not a readable file")
            files["oidc-key"] = self.oidc_key_file
        return files


# Kept even --without-homes: the course's uploaded material and collected hand-ins (portal/config/course.py).
STAFF_DIRS = {"course"}


def local_dirs(var_dir: Path, course_root: Path | None = None) -> dict[str, Path]:
    """Local-mode homes and the local team folder (see hubconfig/spawners.py), and the course's stored material
    and hand-ins (COURSE_ROOT); keys name them in archives."""
    return {
        "users": var_dir / "users",
        "team-shared": var_dir / "shared" / "team-shared",
        "course": course_root or var_dir / "course",
    }


def file_target(key: str, var_dir: Path, env_file: Path | None, oidc_key_file: Path | None) -> Path | None:
    """Where the file saved under `key` goes back to, in the current configuration (None: nowhere)."""
    if key == "env":
        return env_file
    if key == "oidc-key":
        return oidc_key_file
    if key == "hub-cookie-secret":
        return var_dir / "hub" / "jupyterhub_cookie_secret"
    if key.startswith("secret-"):
        return var_dir / "secrets" / key.removeprefix("secret-")
    return None


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- databases ----------------------------------------------------------------------------------------------
def vendor(database: dict) -> str:
    engine = database["ENGINE"]
    if engine.endswith("sqlite3"):
        return "sqlite"
    if engine.endswith("mysql"):
        return "mysql"
    raise BackupError(f"cannot back up a {engine} database (SQLite and MariaDB/MySQL only)")


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through SQLite's online backup API (readers and writers
    go on meanwhile); `target` is replaced wholesale, pages and schema alike."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
        with contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)


@contextlib.contextmanager
def mysql_options(database: dict) -> Iterator[list[str]]:
    """Client arguments with the password in a 0600 option file, never on a command line (`ps` shows those)."""

    def quoted(value) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[client]"]
    for key, option in (("USER", "user"), ("PASSWORD", "password"), ("HOST", "host"), ("PORT", "port")):
        if database.get(key):
            lines.append(f"{option}={quoted(database[key])}")
    if socket_path := (database.get("OPTIONS") or {}).get("unix_socket"):
        lines.append(f"socket={quoted(socket_path)}")
    with tempfile.NamedTemporaryFile("w", prefix="cfps-my-", suffix=".cnf") as fh:  # 0600 by tempfile
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        yield [f"--defaults-extra-file={fh.name}"]


def _mysql_tool(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    raise BackupError(f"{names[0]} is missing: apt-get install mariadb-client")


def mysql_dump(database: dict, target: Path) -> None:
    with mysql_options(database) as options, open(target, "wb") as out:
        cmd = [
            _mysql_tool("mariadb-dump", "mysqldump"),
            *options,
            # One snapshot of every InnoDB table, without locking out the running portal.
            "--single-transaction",
            "--quick",
            "--no-tablespaces",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            database["NAME"],
        ]
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=False, check=False)
    if result.returncode != 0:
        raise BackupError(f"mariadb-dump failed: {_last_line(result.stderr)}")


def sandboxed_client() -> str:
    """The `mariadb` client, which must offer --sandbox (MariaDB 10.5.25, 10.6.18, 10.11.8 and later): without
    it, a `\\!` line in a dump runs a shell command as whoever restores (root)."""
    client = _mysql_tool("mariadb", "mysql")
    usage = subprocess.run([client, "--help"], capture_output=True, text=True, check=False).stdout
    if "--sandbox" not in usage:
        raise BackupError(
            f"{client} has no --sandbox mode, so a dump could run shell commands: install a newer mariadb-client "
            "(10.5.25, 10.6.18, 10.11.8 or later)"
        )
    return client


def mysql_load(database: dict, dump, size: int) -> None:
    client = sandboxed_client()
    with mysql_options(database) as options:
        # --sandbox: no \! (shell), \. (source), tee or pager from the dump; an SQL error ends the load.
        cmd = [client, *options, "--sandbox", "--default-character-set=utf8mb4", database["NAME"]]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            shutil.copyfileobj(dump, proc.stdin, CHUNK)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            raise BackupError(f"loading the database dump failed: {_last_line(stderr)}")


def _last_line(output: bytes | str) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# --- Docker volumes through a short-lived container -----------------------------------------------------------
def _docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    docker = shutil.which("docker")
    if not docker:
        raise BackupError("the docker command is missing: apt-get install docker.io")
    return subprocess.run([docker, *args], capture_output=True, text=True, check=False, **kwargs)


def docker_reachable() -> str:
    """Empty when the engine answers, else why not (one line)."""
    try:
        result = _docker("version", "--format", "{{.Server.Version}}", timeout=30)
    except BackupError as exc:
        return str(exc)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 30 s"
    return "" if result.returncode == 0 else _last_line(result.stderr)


def volume_info(name: str) -> dict | None:
    result = _docker("volume", "inspect", name)
    if result.returncode != 0:
        return None
    attrs = json.loads(result.stdout)[0]
    return {
        "driver": attrs.get("Driver") or "local",
        "options": attrs.get("Options") or {},
        "labels": attrs.get("Labels") or {},
    }


def _container_cmd(image: str, volume: str, mode: str, script: str) -> list[str]:
    return [
        "run", "--rm", "-i", "--network", "none", "--user", "0", "--label", CONTAINER_LABEL,
        "-v", f"{volume}:{MOUNT}:{mode}", "--entrypoint", "sh", image, "-c", script,
    ]  # fmt: skip


def read_volume(image: str, volume: str, out) -> list[str]:
    """Stream a gzip'd tar of `volume` into `out`; returns warnings (files that changed while read)."""
    docker = shutil.which("docker")
    # GNU tar exits 1 for "file changed as we read it": a live home; anything else is a failure.
    script = f"tar --numeric-owner -C {MOUNT} -czf - . ; rc=$?; [ $rc -le 1 ] && exit 0; exit $rc"
    proc = subprocess.Popen(
        [docker, *_container_cmd(image, volume, "ro", script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    shutil.copyfileobj(proc.stdout, out, CHUNK)
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        if "Unable to find image" in stderr or "No such image" in stderr:
            raise BackupError(f"the notebook image {image} is missing: run python manage.py build_image")
        raise BackupError(f"reading volume {volume} failed: {_last_line(stderr)}")
    return [line for line in stderr.splitlines() if "changed as we read" in line]


def volume_is_empty(image: str, volume: str) -> bool:
    script = f'[ -z "$(ls -A {MOUNT})" ]'
    return _docker(*_container_cmd(image, volume, "ro", script), stdin=subprocess.DEVNULL).returncode == 0


def write_volume(image: str, volume: str, info: dict, source, replace: bool) -> None:
    """(Re)create `volume` as recorded and fill it from the gzip'd tar `source`; `replace` empties it first."""
    if volume_info(volume) is None:
        args = ["volume", "create", "--driver", info["driver"]]
        for key, value in sorted(info["options"].items()):
            args += ["--opt", f"{key}={value}"]
        for key, value in sorted(info["labels"].items()):
            args += ["--label", f"{key}={value}"]
        if info["options"].get("o") == "bind" and info["options"].get("device"):
            Path(info["options"]["device"]).mkdir(parents=True, exist_ok=True)  # a bind onto nothing won't mount
        result = _docker(*args, volume)
        if result.returncode != 0:
            raise BackupError(f"cannot create volume {volume}: {_last_line(result.stderr)}")
    clear = f"find {MOUNT} -mindepth 1 -delete && " if replace else ""
    script = f"{clear}tar --numeric-owner -C {MOUNT} -xzpf -"
    docker = shutil.which("docker")
    proc = subprocess.Popen(
        [docker, *_container_cmd(image, volume, "rw", script)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        shutil.copyfileobj(source, proc.stdin, CHUNK)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise BackupError(f"filling volume {volume} failed: {_last_line(stderr)}")


def _rebase(path: str, old_var: str, new_var: str) -> str:
    if old_var and old_var != new_var and (path == old_var or path.startswith(old_var.rstrip("/") + "/")):
        return new_var + path[len(old_var) :]
    return path


# --- local folders ------------------------------------------------------------------------------------------
def tar_folder(folder: Path, out) -> list[str]:
    """A gzip'd tar of `folder`'s content into `out`, skipping what vanishes while it is walked."""
    warnings = []
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                path = Path(root) / name
                try:
                    tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
                except FileNotFoundError:
                    warnings.append(f"{path} vanished while it was read")
    return warnings


def untar_folder(source, folder: Path, old_var: str, new_var: str, replace: bool) -> None:
    if replace and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def keep_inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        member = tarfile.tar_filter(member, dest)  # no absolute names, nothing outside `folder`
        if problem := folder_member_problem(member, dest):
            raise BackupError(problem)
        if member.issym():
            member = member.replace(linkname=_rebase(member.linkname, old_var, new_var), deep=False)
        return member

    with tarfile.open(fileobj=source, mode="r:gz") as tar:
        try:
            tar.extractall(folder, filter=keep_inside)
        except tarfile.FilterError as exc:  # Archive.verify refuses these first; this is the second line
            raise BackupError(f"{folder}: {exc}") from None


def folder_member_problem(member: tarfile.TarInfo, dest: str) -> str:
    """Why a member of a local folder's tarball must not be extracted into `dest` ("" when it may): an
    absolute name or one outside `dest` (tarfile's own filter), a device or fifo, or a hard link to anything
    outside `dest` (extracting one would also give the linked file the member's owner). Symlinks may point
    anywhere; nothing is written through one (tarfile's filter resolves them first)."""
    try:
        tarfile.tar_filter(member, dest)
    except tarfile.FilterError as exc:
        return str(exc)
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return f"{member.name} is a device or other special file"
    if member.islnk():
        root = os.path.realpath(dest)
        target = os.path.realpath(os.path.join(root, member.linkname))
        if os.path.isabs(member.linkname) or os.path.commonpath([target, root]) != root:
            return f"{member.name} is a hard link to {member.linkname}, outside the folder"
    return ""


def _tar_path(name: str) -> Path:
    return Path(os.path.normpath(name.lstrip("/")))


def _through_link(member: tarfile.TarInfo, links: set[Path]) -> str:
    """Whether `member` (or, for a hard link, its target) lies under one of `links`, the tarball's symlinks."""
    paths = [_tar_path(member.name).parent] + ([_tar_path(member.linkname)] if member.islnk() else [])
    for path in paths:
        for step in [*reversed(path.parents), path]:
            if step in links:
                return f"{member.name} goes through the link {step}"
    return ""


# --- writing an archive ----------------------------------------------------------------------------------
class _Writer:
    def __init__(self, tar: tarfile.TarFile, scratch: Path, say: Say):
        self.tar, self.scratch, self.say = tar, scratch, say
        self.parts: list[dict] = []
        self.incomplete = ""  # why a part that should be there is not

    def add(self, member: str, fill: Callable[[object], object], **meta) -> dict:
        """Run `fill(file)` into a scratch file, then append it to the archive with its checksum."""
        spool = self.scratch / "part"
        with open(spool, "w+b") as fh:
            result = fill(fh)
        digest = hashlib.sha256()
        with open(spool, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        info = tarfile.TarInfo(member)
        info.size, info.mode, info.mtime = spool.stat().st_size, 0o600, int(dt.datetime.now().timestamp())
        with open(spool, "rb") as fh:
            self.tar.addfile(info, fh)
        spool.unlink()
        part = {"member": member, "size": info.size, "sha256": digest.hexdigest(), **meta}
        self.parts.append(part)
        for warning in result or []:
            self.say(f"  warning: {warning}")
        self.say(f"  {member}: {human_size(info.size)}")
        return part


def archive_name(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"cfps-backup-{now.strftime('%Y%m%dT%H%M%SZ')}.tar"


def prune(output: Path, keep: int, dry_run: bool = False) -> list[Path]:
    """Delete all but the newest `keep` archives in `output` (names sort by time); returns the deleted ones."""
    archives = sorted(output.glob("cfps-backup-*.tar"))
    old = archives[:-keep] if keep > 0 else []
    for path in old if not dry_run else []:
        path.unlink()
    return old


def plan(sources: Sources) -> list[str]:
    """What `backup` would save, one line per part (for --dry-run)."""
    lines = [f"portal database ({vendor(sources.database)})"]
    if sources.hub_db.is_file():
        lines.append(f"hub database {sources.hub_db}")
    lines += [f"{key}: {path}" for key, path in sources.secret_files().items()]
    folders = sources.local_dirs() if sources.with_homes else sources.staff_dirs()
    lines += [f"local folder {folder}" for folder in folders.values() if folder.is_dir() and any(folder.iterdir())]
    if not sources.with_homes:
        return lines
    if sources.volumes and not (problem := docker_reachable()):
        lines += [f"volume {name}" for name in sources.volumes if volume_info(name) is not None]
    elif sources.volumes:
        lines.append(f"Docker volumes: cannot be read ({problem})")
    return lines


def backup(sources: Sources, output: Path, say: Say) -> Path:
    output.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = output / archive_name()
    if target.exists():
        raise BackupError(f"{target} exists already (two backups in the same second?)")
    partial = output / f".{target.name}.partial"
    # Owner-only from the first byte: the archive holds every secret and every password hash.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh, tempfile.TemporaryDirectory(dir=output, prefix=".cfps-scratch-") as scratch:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                writer = _Writer(tar, Path(scratch), say)
                _write_parts(writer, sources, Path(scratch), say)
                manifest = {
                    "format": FORMAT,
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "host": socket.gethostname(),
                    "var_dir": str(sources.var_dir),
                    "parts": writer.parts,
                }
                data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(dt.datetime.now().timestamp())
                tar.addfile(info, io.BytesIO(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    if writer.incomplete:
        raise IncompleteBackup(target, writer.incomplete)
    return target


def _write_parts(writer: _Writer, sources: Sources, scratch: Path, say: Say) -> None:
    say("portal database")
    kind = vendor(sources.database)
    if kind == "sqlite":
        snapshot = scratch / "portal.sqlite3"
        sqlite_copy(Path(sources.database["NAME"]), snapshot)
        writer.add("portal-db.sqlite3", lambda fh: _copy_file(snapshot, fh), kind="portal-db", engine="sqlite")
        snapshot.unlink()
    else:
        dump = scratch / "portal.sql"
        mysql_dump(sources.database, dump)
        writer.add("portal-db.sql", lambda fh: _copy_file(dump, fh), kind="portal-db", engine="mysql")
        dump.unlink()

    say("hub database")
    if sources.hub_db.is_file():
        snapshot = scratch / "hub.sqlite3"
        sqlite_copy(sources.hub_db, snapshot)
        writer.add("hub-db.sqlite3", lambda fh: _copy_file(snapshot, fh), kind="hub-db")
        snapshot.unlink()
    else:
        say(f"  none at {sources.hub_db} (the hub never ran here)")

    say(".env and secrets")
    for key, path in sources.secret_files().items():
        stat = path.stat()
        writer.add(
            f"files/{key}", lambda fh, path=path: _copy_file(path, fh), kind="file", key=key,
            path=str(path), mode=stat.st_mode & 0o777, owner=_owner(stat.st_uid), group=_group(stat.st_gid),
        )  # fmt: skip

    for key, folder in (sources.local_dirs() if sources.with_homes else sources.staff_dirs()).items():
        if folder.is_dir() and any(folder.iterdir()):
            say(f"local folder {folder}")
            writer.add(f"dirs/{key}.tar.gz", lambda fh, folder=folder: tar_folder(folder, fh), kind="dir", key=key)
    if not sources.with_homes:
        say("homes: left out (--without-homes)")
        return

    problem = docker_reachable() if sources.volumes else ""
    if problem:
        say(f"Docker volumes: skipped ({problem})")
        if sources.docker_required:
            # The databases and secrets are still worth an archive; the command then fails loudly.
            writer.incomplete = f"the archive has no Docker volumes: {problem}"
        return
    for name in sources.volumes:
        info = volume_info(name)
        if info is None:
            continue
        say(f"volume {name}")
        writer.add(
            f"volumes/{name}.tar.gz", lambda fh, name=name: read_volume(sources.image, name, fh),
            kind="volume", volume=name, info=info,
        )  # fmt: skip


def _copy_file(path: Path, out) -> None:
    with open(path, "rb") as fh:
        shutil.copyfileobj(fh, out, CHUNK)


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --- reading an archive ------------------------------------------------------------------------------------
class Archive:
    """An archive opened for restore: `verify()` first, then `open(part)` streams a member."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.tar = tarfile.open(self.path, mode="r:")
            member = self.tar.extractfile(MANIFEST)
            self.manifest = json.load(member)
        except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
            raise BackupError(f"{self.path} is not a CFPS backup archive ({exc})") from None
        if not isinstance(self.manifest, dict):
            raise BackupError(f"{self.path} is not a CFPS backup archive (its manifest is not an object)")
        if self.manifest.get("format") != FORMAT:
            raise BackupError(f"{self.path} has format {self.manifest.get('format')!r}; this version reads {FORMAT}")
        self.parts: list[dict] = self.manifest.get("parts")

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def verify(self, say: Say) -> None:
        """Every member one `backup` writes, listed and intact, nothing unlisted (module rules); raises
        BackupError naming the first bad one."""
        self._check_structure()
        listed = {part["member"] for part in self.parts}
        extra = [m.name for m in self.tar.getmembers() if m.name != MANIFEST and m.name not in listed]
        if extra:
            raise BackupError(f"{self.path}: {extra[0]} is not in the manifest; refusing the archive")
        for part in self.parts:
            try:
                member = self.tar.getmember(part["member"])
            except KeyError:
                raise BackupError(f"{self.path}: {part['member']} is missing") from None
            digest = hashlib.sha256()
            with self.tar.extractfile(member) as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
            if member.size != part["size"] or digest.hexdigest() != part["sha256"]:
                raise BackupError(
                    f"{self.path}: {part['member']} does not match its checksum (damaged or changed); nothing restored"
                )
        say(f"checksums: {len(self.parts)} parts intact")
        for part in self.of_kind("dir"):
            self._check_folder(part)

    def refuse(self, what: str) -> BackupError:
        return BackupError(f"{self.path}: {what}; refusing the archive, nothing restored")

    def _check_structure(self) -> None:
        seen = set()
        for member in self.tar.getmembers():
            if member.name in seen:
                raise self.refuse(f"{member.name} is in it twice")
            seen.add(member.name)
            if not member.isreg():
                raise self.refuse(f"{member.name} is not a plain file (a link, device or folder)")
        parts = self.parts if isinstance(self.parts, list) else []
        if not parts or not all(isinstance(part, dict) for part in parts):
            raise self.refuse("its manifest lists no parts")
        if not isinstance(self.manifest.get("var_dir", ""), str):
            raise self.refuse("its manifest's var_dir is not a path")
        members = [part.get("member") for part in parts]
        for part in parts:
            if problem := part_problem(part):
                raise self.refuse(problem)
        if len(set(members)) != len(members):
            raise self.refuse("its manifest lists a member twice")
        if [part["kind"] for part in parts].count("portal-db") != 1:
            raise self.refuse("it does not hold exactly one portal database")

    def _check_folder(self, part: dict) -> None:
        """A local folder's tarball holds nothing its extraction would refuse halfway (folder_member_problem),
        nor anything written through one of its own symlinks."""
        dest = str(Path(tempfile.gettempdir()) / "cfps-restore-check")  # a name only: nothing is written
        links: set[Path] = set()
        try:
            with tarfile.open(fileobj=self.open(part), mode="r:gz") as tar:
                for member in tar:
                    if problem := folder_member_problem(member, dest) or _through_link(member, links):
                        raise self.refuse(f"{part['member']}: {problem}")
                    if member.issym():
                        links.add(_tar_path(member.name))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise self.refuse(f"{part['member']} is not a readable tarball ({exc})") from None

    def open(self, part: dict):
        return self.tar.extractfile(part["member"])

    def of_kind(self, kind: str) -> list[dict]:
        return [part for part in self.parts if part["kind"] == kind]


def part_problem(part: dict) -> str:
    """Why a manifest part is not one `backup` writes ("" when it is)."""
    kind, member, key = part.get("kind"), part.get("member"), part.get("key")
    if not isinstance(member, str) or not isinstance(part.get("size"), int) or not isinstance(part.get("sha256"), str):
        return f"a {kind} part has no member, size or checksum"
    if kind == "portal-db":
        expected = {"sqlite": "portal-db.sqlite3", "mysql": "portal-db.sql"}.get(part.get("engine"))
    elif kind == "hub-db":
        expected = "hub-db.sqlite3"
    elif kind == "file":
        secret = isinstance(key, str) and key.startswith("secret-") and SAFE_NAME.fullmatch(key.removeprefix("secret-"))
        expected = f"files/{key}" if key in FILE_KEYS or secret else None
        if expected and not isinstance(part.get("mode"), int):
            return f"{member} has no file mode"
    elif kind == "dir":
        expected = f"dirs/{key}.tar.gz" if key in local_dirs(Path("/")) else None
    elif kind == "volume":
        volume = part.get("volume")
        expected = f"volumes/{volume}.tar.gz" if isinstance(volume, str) and SAFE_NAME.fullmatch(volume) else None
        if expected and not isinstance(part.get("info"), dict):
            return f"{member} says nothing about its volume"
    else:
        return f"{member!r} is of a kind restore does not know ({kind!r})"
    if member != expected:
        return f"{member!r} is not a name backup writes for a {kind} part"
    return ""


@dataclass
class Target:
    """Where `restore` puts things: the current configuration's."""

    var_dir: Path
    database: dict
    env_file: Path | None
    oidc_key_file: Path | None
    image: str
    data_root: Path | None = None  # DATA_ROOT: bind-mounted volumes may live under it (and under var_dir)
    course_root: Path | None = None  # COURSE_ROOT (default var/course)


def _inside(path: str, roots: list[Path]) -> bool:
    """`path` is absolute, names no `..`, and lies under one of `roots` (checked without following links)."""
    if not path.startswith("/") or ".." in Path(path).parts:
        return False
    return any(Path(path) == root or Path(path).is_relative_to(root) for root in roots)


def volume_plan(archive: Archive, part: dict, target: Target) -> dict:
    """The volume `part` is to be (re)created as, with a bind's folder moved with var/; raises BackupError
    for anything but a plain, sized, NFS or bind volume of the local driver whose folder is under the
    target's var/ or DATA_ROOT (a root container fills it: a host device or any other path would be
    written as root)."""
    info = part["info"]
    options = info.get("options") or {}
    labels = info.get("labels") or {}
    driver = info.get("driver") or "local"
    name = part["volume"]
    if driver != "local" or not isinstance(options, dict) or not isinstance(labels, dict):
        raise archive.refuse(f"volume {name} is not a local volume")
    if not all(isinstance(text, str) for text in (*options.values(), *labels.values(), *options, *labels)):
        raise archive.refuse(f"volume {name} has options or labels that are not text")
    if set(options) - {"type", "o", "device", "size"}:
        raise archive.refuse(f"volume {name} has options restore does not create ({sorted(options)})")
    if "size" in options and not re.fullmatch(r"[0-9]+(\.[0-9]+)?[KMGTkmgt]?[Bb]?", options["size"]):
        raise archive.refuse(f"volume {name} has a size restore cannot read ({options['size']!r})")
    options = dict(options)
    kind = options.get("type")
    if kind is None and {"o", "device"} & set(options):
        raise archive.refuse(f"volume {name} mounts something without a type")
    if kind == "none":
        device = _rebase(options.get("device", ""), archive.manifest.get("var_dir", ""), str(target.var_dir))
        roots = [target.var_dir] + ([target.data_root] if target.data_root else [])
        if options.get("o") != "bind" or not _inside(device, roots):
            raise archive.refuse(
                f"volume {name} binds {options.get('device')!r}, outside var/ and DATA_ROOT ({', '.join(map(str, roots))})"
            )
        options["device"] = device
    elif kind in ("nfs", "nfs4"):
        if not options.get("device", "").startswith(":"):
            raise archive.refuse(f"volume {name} is NFS without a remote path")
    elif kind is not None:
        raise archive.refuse(f"volume {name} mounts a {kind!r} file system (a host device?)")
    return {"driver": "local", "options": options, "labels": labels}


def check_volumes(archive: Archive, target: Target) -> None:
    """Every volume of the archive is one restore may create (volume_plan), before anything changes."""
    for part in archive.of_kind("volume"):
        volume_plan(archive, part, target)


def restored_env_value(env_file: Path | None, key: str) -> str:
    """`key`'s value in the .env just restored, read as the portal reads it (python-dotenv), or ""."""
    if env_file is None or not env_file.is_file():
        return ""
    from dotenv import dotenv_values

    return dotenv_values(env_file, interpolate=False).get(key) or ""


def hub_db_users(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM users").fetchone()[0]
    except sqlite3.Error:
        return 0


def occupied(archive: Archive, target: Target) -> list[str]:
    """What a restore would overwrite besides the portal database (which the command checks): one line each."""
    found = []
    if users := hub_db_users(target.var_dir / "hub" / "jupyterhub.sqlite"):
        found.append(f"the hub database knows {users} user(s)")
    for folder in local_dirs(target.var_dir, target.course_root).values():
        if folder.is_dir() and any(folder.iterdir()):
            found.append(f"{folder} is not empty")
    volumes = archive.of_kind("volume")
    if volumes and not docker_reachable():
        # An empty one is fine: `setup_volumes` may have made the team volume before the restore.
        found += [
            f"Docker volume {part['volume']} has files"
            for part in volumes
            if volume_info(part["volume"]) is not None and not volume_is_empty(target.image, part["volume"])
        ]
    return found


def restore(archive: Archive, target: Target, say: Say, replace: bool) -> None:
    """Put every part back; the caller has verified the archive and checked the target."""
    old_var, new_var = archive.manifest.get("var_dir", ""), str(target.var_dir)
    for part in archive.of_kind("portal-db"):
        say(f"portal database ({part['engine']})")
        if part["engine"] == "sqlite":
            with tempfile.TemporaryDirectory(prefix="cfps-restore-") as scratch:
                copy = Path(scratch) / "portal.sqlite3"
                with open(copy, "wb") as fh:
                    shutil.copyfileobj(archive.open(part), fh, CHUNK)
                sqlite_copy(copy, Path(target.database["NAME"]))
        else:
            mysql_load(target.database, archive.open(part), part["size"])

    for part in archive.of_kind("hub-db"):
        say("hub database")
        with tempfile.TemporaryDirectory(prefix="cfps-restore-") as scratch:
            copy = Path(scratch) / "hub.sqlite3"
            with open(copy, "wb") as fh:
                shutil.copyfileobj(archive.open(part), fh, CHUNK)
            hub = target.var_dir / "hub"
            hub.mkdir(parents=True, exist_ok=True)
            sqlite_copy(copy, hub / "jupyterhub.sqlite")

    say(".env and secrets")
    files = sorted(archive.of_kind("file"), key=lambda part: part["key"] != "env")  # .env first: it may name the key
    for part in files:
        where = file_target(part["key"], target.var_dir, target.env_file, target.oidc_key_file)
        if part["key"] == "oidc-key" and where is None:
            # Only to the file the restored .env names (the archive's own record of it must agree).
            named = restored_env_value(target.env_file, "OIDC_RSA_PRIVATE_KEY_FILE")
            if named and named == part.get("path") and _inside(named, [Path("/")]):
                where = Path(named)
        if where is None or where.is_symlink() or (where.exists() and not where.is_file()):
            say(f"  {part['key']}: skipped (no file to restore it to)")
            continue
        _write_secret(where, archive.open(part).read(), part["mode"], part.get("owner"), part.get("group"))
        say(f"  {part['key']} -> {where}")

    for part in archive.of_kind("dir"):
        folder = local_dirs(target.var_dir, target.course_root)[part["key"]]  # a key verify() accepted
        say(f"local folder {folder}")
        untar_folder(archive.open(part), folder, old_var, new_var, replace)

    volumes = archive.of_kind("volume")
    if volumes and (problem := docker_reachable()):
        raise BackupError(f"the archive holds Docker volumes but {problem}")
    for part in volumes:
        say(f"volume {part['volume']}")
        write_volume(target.image, part["volume"], volume_plan(archive, part, target), archive.open(part), replace)


def _write_secret(path: Path, data: bytes, mode: int, owner: str | None, group: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # Never more open than it was, never readable by others.
        os.chmod(tmp, mode & 0o750)
        # As root, give it back to the same names (e.g. root:cfps for .env); ids differ between machines.
        if os.geteuid() == 0:
            uid = gid = -1
            with contextlib.suppress(KeyError, TypeError):
                uid = pwd.getpwnam(owner).pw_uid
            with contextlib.suppress(KeyError, TypeError):
                gid = grp.getgrnam(group).gr_gid
            os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
