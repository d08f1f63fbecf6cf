"""Files in a student's home, treated as hostile ground: deliver a tree with the merge rules, take a copy of a
folder, both through open folders and never through a path a student could bend.

Standard library only and nothing else from this repository: the same file runs in the course worker and,
as `python3 homefiles.py deliver|collect` with a JSON request on stdin, inside a short helper container of
the notebook image that mounts the home, or as `python3 homefiles.py serve` in one that mounts the homes of a
batch and answers one request after another (userspace/homes.py decides which).

Merge rules of a delivery (nbgitpuller's model). The worker remembers, per student and file name, the hash of
what it last wrote under that name (`remembered`, kept in the portal's database: a student cannot forge it).
For each file of the new version, at its name in the home:
1. nothing there (a new file, or one the student deleted): it is written (a deleted file comes back);
2. the same content already: nothing to do;
3. a file whose content is what was last delivered (the student has not changed it): it is replaced;
4. anything else (the student changed it, or made a file, folder or link of that name): it is left alone and
   the new version is written beside it as `<stem>.new<suffix>` (`week2.ipynb` → `week2.new.ipynb`), or
   `<stem>.new-2<suffix>`, `-3`, ... when that name is taken by something the worker did not write; the result
   lists it under "beside".
A folder on the way that is not a real folder (a file or a link of that name) is treated the same way: the
files go into `<name>.new/` instead. Files of older versions that the new one lacks stay where they are.
Nothing a student wrote is ever changed, moved or deleted.

Safety rules (both operations):
- Every path is walked one name at a time from an open folder (`openat` with O_NOFOLLOW): a symbolic link is
  never followed, wherever it is, and a folder a student swaps for a link while we work is refused, not
  entered. Only regular files and folders are read; links, pipes, sockets and devices are skipped and listed.
- A file is written whole or not at all: into a temporary name in the same folder (`.cfps-tmp-*`), synced,
  given its owner and mode (0644, folders 0755), then renamed over its name; a left-over temporary file (a
  worker killed while writing) is removed the next time the worker writes into that folder. Just before a
  file is replaced the worker checks that it has not changed since it was read; if it has, the new version
  goes beside it (rule 4).
- A full disk or quota (ENOSPC, EDQUOT) stops the operation with HomeError("disk_full"); what was written
  before stays whole, and the result says what that was.
- A copy (collect) stops at `max_bytes` and `max_files` (HomeError "too_big" / "too_many_files"), reads at most
  MAX_DEPTH folders deep, and never includes `feedback/` (returned by staff) or `.ipynb_checkpoints/`.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import secrets
import stat
import sys
import tarfile
from pathlib import Path, PurePosixPath

CHUNK = 1024 * 1024
MAX_DEPTH = 32
TMP_PREFIX = ".cfps-tmp-"
FILE_MODE = 0o644
DIR_MODE = 0o755
SKIP_IN_COLLECT = ("feedback", ".ipynb_checkpoints")
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class HomeError(Exception):
    """An operation on a home cannot go on; `code` for the caller, the message for people (one line)."""

    def __init__(self, code: str, message: str, **details):
        super().__init__(message)
        self.code = code
        self.details = details

    def as_dict(self) -> dict:
        return {"code": self.code, "message": str(self), **self.details}


def _disk_error(exc: OSError, where: str) -> HomeError:
    if exc.errno in DISK_FULL:
        return HomeError("disk_full", f"the disk holding the home is full ({os.strerror(exc.errno)}) at {where}")
    return HomeError("io", f"{where}: {os.strerror(exc.errno) if exc.errno else exc}")


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _hash_file(dir_fd: int, name: str) -> tuple[str, os.stat_result] | None:
    """(sha256, stat) of a regular file `name` in `dir_fd`, or None when it is anything else."""
    try:
        fd = os.open(name, O_READ, dir_fd=dir_fd)
    except OSError:
        return None  # a link (ELOOP), gone, unreadable
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return _sha256_fd(fd), info
    finally:
        os.close(fd)


def open_home(path: str | Path) -> int:
    """An open folder for the home at `path` (its last name must not be a link)."""
    try:
        return os.open(str(path), O_DIR)
    except FileNotFoundError:
        raise HomeError("no_home", f"{path} does not exist") from None
    except OSError as exc:
        raise HomeError("no_home", f"{path} is not a folder this worker can open ({os.strerror(exc.errno)})") from None


def split_new(name: str, n: int = 1) -> str:
    """`week2.ipynb` → `week2.new.ipynb` (n=1), `week2.new-2.ipynb` (n=2)."""
    path = PurePosixPath(name)
    suffix = path.suffix if path.stem else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return f"{stem}.new{'' if n == 1 else f'-{n}'}{suffix}"


class _Folders:
    """Open folders under a home, made on demand; a name on the way that is not a real folder becomes
    `<name>.new` (then `<name>.new-2`, ...)."""

    def __init__(self, home_fd: int, owner: tuple[int, int] | None):
        self.home_fd = home_fd
        self.owner = owner
        self.open: dict[str, int] = {"": home_fd}
        self.actual: dict[str, str] = {"": ""}  # wanted path -> the path it really has in the home
        self.cleaned: set[str] = set()

    def close(self) -> None:
        for key, fd in self.open.items():
            if key:
                os.close(fd)
        self.open = {"": self.home_fd}

    def get(self, rel: str, create: bool = True) -> tuple[int, str]:
        """(open folder, its actual path relative to the home) for the wanted path `rel`."""
        if rel not in self.open:
            parent_rel, _, name = rel.rpartition("/")
            parent_fd, parent_actual = self.get(parent_rel, create)
            fd, actual_name = self._enter(parent_fd, name, parent_actual, create)
            self.open[rel] = fd
            self.actual[rel] = f"{parent_actual}/{actual_name}" if parent_actual else actual_name
        return self.open[rel], self.actual[rel]

    def _enter(self, parent_fd: int, name: str, parent_actual: str, create: bool) -> tuple[int, str]:
        where = f"{parent_actual}/{name}" if parent_actual else name
        for n in range(100):
            candidate = name if n == 0 else f"{name}.new" if n == 1 else f"{name}.new-{n}"
            try:
                return os.open(candidate, O_DIR, dir_fd=parent_fd), candidate
            except FileNotFoundError:
                if not create:
                    raise HomeError("no_folder", f"{where} does not exist") from None
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.EPERM):
                    raise _disk_error(exc, where) from None
                if not create:
                    raise HomeError("not_a_folder", f"{where} is not a folder") from None
                continue  # a file or a link of that name: the next candidate
            try:
                os.mkdir(candidate, DIR_MODE, dir_fd=parent_fd)
            except FileExistsError:
                pass  # made meanwhile: open it, or take the next name
            except OSError as exc:
                raise _disk_error(exc, where) from None
            try:
                fd = os.open(candidate, O_DIR, dir_fd=parent_fd)
            except OSError:
                continue
            if self.owner:
                os.fchown(fd, *self.owner)
            os.fchmod(fd, DIR_MODE)
            return fd, candidate
        raise HomeError("io", f"no free name for the folder {where}")

    def clean_leftovers(self, rel: str) -> None:
        """Remove temporary files a killed worker left in this folder (once per folder and operation)."""
        if rel in self.cleaned:
            return
        self.cleaned.add(rel)
        fd = self.open[rel]
        for entry in os.listdir(fd):
            if entry.startswith(TMP_PREFIX):
                info = _lstat(fd, entry)
                if info and stat.S_ISREG(info.st_mode):
                    os.unlink(entry, dir_fd=fd)


class _Changed(Exception):
    """The file changed between reading it and replacing it."""


def _write(dir_fd: int, name: str, source: Path, owner, expect: os.stat_result | None = None) -> None:
    """Write `source` as `name` in `dir_fd`: temporary name, sync, owner and mode, rename."""
    tmp = f"{TMP_PREFIX}{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            with open(source, "rb") as src:
                while chunk := src.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            os.fsync(fd)
            if owner:
                os.fchown(fd, *owner)
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        if expect is not None:
            now = _lstat(dir_fd, name)
            if now is None or (now.st_ino, now.st_mtime_ns, now.st_size) != (
                expect.st_ino,
                expect.st_mtime_ns,
                expect.st_size,
            ):
                raise _Changed(name)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def deliver(
    home: int,
    dest: str,
    source: Path,
    files: dict[str, str],
    remembered: dict[str, str],
    owner: tuple[int, int] | None = None,
) -> dict:
    """Deliver `files` ({relative path: sha256}, read from `source`/<path>) into the folder `dest` of the open home
    `home`, by the merge rules (module docstring). Returns what it did; on HomeError the exception's `details`
    carry the same result for what was done before it (`partial`)."""
    result = {"files": dict(remembered), "added": [], "restored": [], "updated": [], "unchanged": [], "beside": []}
    folders = _Folders(home, owner)
    try:
        for rel in sorted(files):
            sha = files[rel]
            folder, _, name = f"{dest}/{rel}".rpartition("/")
            try:
                dir_fd, actual = folders.get(folder)
                folders.clean_leftovers(folder)
                _deliver_one(dir_fd, rel, name, sha, Path(source) / rel, remembered, owner, result, folder, actual)
            except OSError as exc:
                error = _disk_error(exc, f"{dest}/{rel}")
                error.details["partial"] = result
                raise error from None
            except HomeError as error:
                error.details["partial"] = result
                raise
    finally:
        folders.close()
    return result


def _deliver_one(dir_fd, rel, name, sha, source, remembered, owner, result, wanted: str, actual: str) -> None:
    """One file by the merge rules. `wanted` is the folder it belongs in, `actual` the one it goes into (they
    differ when a name on the way was not a folder); both relative to the home."""
    prefix = rel[: len(rel) - len(name)]  # "sub/dir/" of rel
    placed = None  # the name it was written under, when not its own
    current = _lstat(dir_fd, name)
    if current is None:
        _write(dir_fd, name, source, owner)
        result["restored" if rel in remembered else "added"].append(rel)
        placed = name
    else:
        found = _hash_file(dir_fd, name) if stat.S_ISREG(current.st_mode) else None
        if found and found[0] == sha:
            result["unchanged"].append(rel)
            placed = name
        elif found and remembered.get(rel) == found[0]:
            try:
                _write(dir_fd, name, source, owner, expect=found[1])
                result["updated"].append(rel)
                placed = name
            except _Changed:
                pass  # the student saved it just now: theirs stays, rule 4
    if placed is None:
        placed = _beside(dir_fd, name, prefix, sha, source, remembered, owner)
        result["files"][prefix + placed] = sha
    else:
        result["files"][rel] = sha
    if placed != name or wanted != actual:
        result["beside"].append({"file": f"{wanted}/{name}", "new": f"{actual}/{placed}"})


def _beside(dir_fd, name, prefix, sha, source, remembered, owner) -> str:
    """Write the new version beside the student's `name` (rule 4); returns the name used."""
    for n in range(1, 1000):
        candidate = split_new(name, n)
        there = _lstat(dir_fd, candidate)
        if there is None:
            _write(dir_fd, candidate, source, owner)
            return candidate
        if not stat.S_ISREG(there.st_mode):
            continue
        same = _hash_file(dir_fd, candidate)
        if not same:
            continue
        if same[0] == sha:
            return candidate
        if remembered.get(prefix + candidate) != same[0]:
            continue  # not ours, or changed since: leave it
        try:
            _write(dir_fd, candidate, source, owner, expect=same[1])
        except _Changed:
            continue
        return candidate
    raise HomeError("io", f"no free name beside {prefix}{name}")


# --- taking a copy ------------------------------------------------------------------------------------------------
class FolderSink:
    """Writes a copy into a fresh folder on the server (the worker's own, not a home)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=False)

    def add(self, rel: str, read, limit: int, size: int = 0) -> tuple[int, str]:
        """Copy at most `limit` + 1 bytes from `read(n)` to `rel`; (bytes, sha256)."""
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, done = hashlib.sha256(), 0
        with open(target, "xb") as out:
            while done <= limit and (chunk := read(min(CHUNK, limit + 1 - done))):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
        return done, digest.hexdigest()


class TarSink:
    """Writes a copy as a tar stream (the helper container's stdout): `files/<rel>` members, then `summary.json`."""

    def __init__(self, stream):
        self.tar = tarfile.open(fileobj=stream, mode="w|")

    def add(self, rel: str, read, limit: int, size: int = 0) -> tuple[int, str]:
        """Add `size` bytes (at most `limit` + 1) from `read(n)` as `files/<rel>`; the receiver hashes them."""

        class Reader(io.RawIOBase):
            def readable(self):
                return True

            def readinto(self, buffer):
                chunk = read(len(buffer))
                buffer[: len(chunk)] = chunk
                return len(chunk)

        info = tarfile.TarInfo(f"files/{rel}")
        info.size = min(size, limit + 1)
        self.tar.addfile(info, io.BufferedReader(Reader(), CHUNK))
        return info.size, ""

    def finish(self, summary: dict) -> None:
        data = json.dumps(summary, ensure_ascii=False).encode()
        info = tarfile.TarInfo("summary.json")
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        self.tar.close()


def collect(home: int, folder: str, sink, max_bytes: int, max_files: int) -> dict:
    """Copy the folder `folder` of the open home `home` into `sink`. Returns {"files": [{"path", "size",
    "sha256"}], "skipped": [{"path", "why"}], "size": total bytes}; raises HomeError "no_folder",
    "not_a_folder", "too_big", "too_many_files"."""
    folders = _Folders(home, None)
    try:
        try:
            root, _ = folders.get(folder, create=False)
        except HomeError as error:
            what = "does not exist" if error.code == "no_folder" else "is not a folder"
            raise HomeError(error.code, f"{folder} {what}") from None
        listing, skipped = [], []
        _list(root, "", 0, listing, skipped, max_files)
        total = sum(size for _, size in listing)
        if total > max_bytes:
            raise HomeError("too_big", "the folder is larger than the limit", size=total, limit=max_bytes)
        copied, size = [], 0
        for rel, _ in listing:
            parent, _, name = rel.rpartition("/")
            dir_fd = root if not parent else _open_below(root, parent)
            try:
                try:
                    fd = os.open(name, O_READ, dir_fd=dir_fd)
                except OSError:
                    skipped.append({"path": rel, "why": "changed while copying"})
                    continue
                try:
                    info = os.fstat(fd)
                    if not stat.S_ISREG(info.st_mode):
                        skipped.append({"path": rel, "why": "not a regular file"})
                        continue
                    got, sha = sink.add(rel, functools.partial(os.read, fd), max_bytes - size, info.st_size)
                finally:
                    os.close(fd)
            finally:
                if dir_fd != root:
                    os.close(dir_fd)
            size += got
            if size > max_bytes:
                raise HomeError("too_big", "the folder is larger than the limit", size=size, limit=max_bytes)
            copied.append({"path": rel, "size": got, "sha256": sha})
        return {"files": copied, "skipped": skipped, "size": size}
    finally:
        folders.close()


def _open_below(root: int, rel: str) -> int:
    fd = root
    for name in rel.split("/"):
        try:
            child = os.open(name, O_DIR, dir_fd=fd)
        except OSError:
            raise HomeError("changed", f"{rel} changed while it was copied") from None
        finally:
            if fd != root:
                os.close(fd)
        fd = child
    return fd


def _list(dir_fd: int, prefix: str, depth: int, listing: list, skipped: list, max_files: int) -> None:
    for name in sorted(os.listdir(dir_fd)):
        rel = prefix + name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            skipped.append({"path": rel.encode("utf-8", "replace").decode(), "why": "name is not UTF-8"})
            continue
        if (not prefix and name in SKIP_IN_COLLECT) or name == ".ipynb_checkpoints" or name.startswith(TMP_PREFIX):
            continue
        info = _lstat(dir_fd, name)
        if info is None:
            continue
        if len(listing) >= max_files:
            raise HomeError("too_many_files", "the folder has more files than the limit", limit=max_files)
        if stat.S_ISREG(info.st_mode):
            listing.append((rel, info.st_size))
        elif stat.S_ISDIR(info.st_mode):
            if depth >= MAX_DEPTH:
                skipped.append({"path": rel, "why": "too deep"})
                continue
            try:
                child = os.open(name, O_DIR, dir_fd=dir_fd)
            except OSError:
                skipped.append({"path": rel, "why": "cannot be opened"})
                continue
            try:
                _list(child, rel + "/", depth + 1, listing, skipped, max_files)
            finally:
                os.close(child)
        else:
            skipped.append({"path": rel, "why": "link" if stat.S_ISLNK(info.st_mode) else "not a regular file"})


# --- in a helper container: `python3 homefiles.py deliver|collect`, the request as JSON on stdin -------------------
CONTAINER_HOME = "/home/jovyan"
CONTAINER_SOURCE = "/src"
CONTAINER_HOMES = "/homes"  # `serve`: the homes of a batch, /homes/0, /homes/1, ...
EXIT_HOME_ERROR = 3


class FrameWriter(io.RawIOBase):
    """Bytes as frames (`<length in hex>\n<bytes>`, then `0\n` at the end): a copy's tar stream inside `serve`'s
    answers, so the reader knows where it ends whatever the tar's own padding."""

    def __init__(self, out):
        self.out = out

    def writable(self):
        return True

    def write(self, data):
        if data:
            self.out.write(b"%x\n" % len(data))
            self.out.write(bytes(data))
        return len(data)

    def end(self) -> None:
        self.out.write(b"0\n")
        self.out.flush()


def _answer(out, message: dict) -> None:
    out.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
    out.flush()


def serve(root: str, stdin, stdout, source: str = CONTAINER_SOURCE) -> int:
    """`homefiles.py serve`: one helper for the homes of a batch (mounted at `root`/0, /1, ...), one request per line
    on stdin, until it closes. {"op": "deliver", "home": i, "dest", "files", "remembered"} is answered by one line,
    {"result": ...} or {"error": ...}; {"op": "collect", "home": i, "folder", "max_bytes", "max_files"} by the line
    {"stream": true}, the copy as a framed tar stream (TarSink's, see FrameWriter), then {"done": true} or
    {"error": ...}. A home that fails is answered so; the next request is served all the same."""
    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            home = open_home(f"{root}/{int(request['home'])}")
        except HomeError as error:
            _answer(stdout, {"error": error.as_dict()})
            continue
        try:
            if request["op"] == "deliver":
                try:
                    result = deliver(home, request["dest"], Path(source), request["files"], request["remembered"])
                except HomeError as error:
                    _answer(stdout, {"error": error.as_dict()})
                else:
                    _answer(stdout, {"result": result})
            elif request["op"] == "collect":
                _answer(stdout, {"stream": True})
                frames = FrameWriter(stdout)
                sink = TarSink(frames)
                try:
                    summary = collect(home, request["folder"], sink, request["max_bytes"], request["max_files"])
                    sink.finish({"skipped": summary["skipped"]})
                except HomeError as error:
                    frames.end()
                    _answer(stdout, {"error": error.as_dict()})
                else:
                    frames.end()
                    _answer(stdout, {"done": True})
            else:
                _answer(stdout, {"error": {"code": "helper", "message": f"unknown operation {request['op']!r}"}})
        finally:
            os.close(home)
    return 0


def main(argv: list[str]) -> int:
    if argv[1:2] == ["serve"]:
        root = argv[2] if len(argv) > 2 else CONTAINER_HOMES
        source = argv[3] if len(argv) > 3 else CONTAINER_SOURCE
        return serve(root, sys.stdin.buffer, sys.stdout.buffer, source)
    request = json.loads(sys.stdin.buffer.read() or b"{}")
    home = open_home(CONTAINER_HOME)
    try:
        if argv[1:] == ["deliver"]:
            try:
                result = deliver(home, request["dest"], Path(CONTAINER_SOURCE), request["files"], request["remembered"])
            except HomeError as error:
                print(json.dumps({"error": error.as_dict()}, ensure_ascii=False))
                return EXIT_HOME_ERROR
            print(json.dumps(result, ensure_ascii=False))
            return 0
        if argv[1:] == ["collect"]:
            sink = TarSink(sys.stdout.buffer)
            try:
                summary = collect(home, request["folder"], sink, request["max_bytes"], request["max_files"])
            except HomeError as error:
                print(json.dumps({"error": error.as_dict()}, ensure_ascii=False), file=sys.stderr)
                return EXIT_HOME_ERROR
            sink.finish({"skipped": summary["skipped"]})
            return 0
    finally:
        os.close(home)
    print("usage: homefiles.py deliver|collect < request.json, or homefiles.py serve [root [source]]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
