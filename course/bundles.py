"""Files staff hand in (an uploaded notebook or any file, several files, a zip, or a folder under
DATA_ROOT/course/) become an immutable Bundle under COURSE_ROOT/bundles/<key>/.

Rules (what is refused says why in one line, shown next to the form field):
- A zip is read from its table of contents before anything is written: at most COURSE_UPLOAD_MAX_FILES
  entries and COURSE_UPLOAD_LIMIT bytes uncompressed in all (the sizes it declares; while unpacking, a member
  that gives more than it declared stops everything), no absolute path, no `..`, no links or special files,
  no name twice. Names keep their Chinese characters: a zip from Windows' own "send to compressed folder"
  stores them in the local code page without the UTF-8 flag, so a name that is not valid CP437-as-UTF-8 is
  read as GB18030. One folder at the top holding everything (`week2/...`, as zipping a folder makes) is
  taken away, so the files land directly in the hand-out's folder. `__MACOSX/` and `.DS_Store` are left out.
- A folder on the server must be under DATA_ROOT/course/ (no way out of it through `..` or a link) and is
  read with the same limits; links and special files in it are refused.
- A bundle is written into a temporary folder and renamed into place: there is never a half-written one. Its
  files are readable by all (0644, folders 0755): the worker's helper containers read them as the notebook user
  (the folders above, COURSE_ROOT and var/, stay closed to other users of the machine).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from course.models import Bundle
from course.names import safe_relative_path

CHUNK = 1024 * 1024
IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", ".ipynb_checkpoints/")


def source_root() -> Path:
    """Where staff may pick a folder on the server: DATA_ROOT/course/."""
    return settings.CONTAINERS.data_root / "course"


def _limits() -> tuple[int, int]:
    return settings.COURSE.upload_limit, settings.COURSE.upload_max_files


def _mb(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"


def _ignored(name: str) -> bool:
    return any(part + "/" in IGNORED or part in IGNORED for part in name.split("/"))


class _Writer:
    """A bundle being written: files go into a temporary folder, which becomes the bundle's on `save()`."""

    def __init__(self, source: str):
        self.bundle = Bundle(source=source[:300])
        self.root = settings.COURSE.bundles_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / f".partial-{self.bundle.key}"
        self.tmp.mkdir()
        self.tmp.chmod(0o755)
        self.files: dict[str, dict] = {}

    def add(self, rel: str, stream, declared: int | None = None) -> None:
        limit, _ = _limits()
        target = self.tmp / rel
        for parent in reversed(target.relative_to(self.tmp).parents[:-1]):
            (self.tmp / parent).mkdir(mode=0o755, exist_ok=True)
            (self.tmp / parent).chmod(0o755)
        digest, size = hashlib.sha256(), 0
        total = sum(f["size"] for f in self.files.values())
        with open(target, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if (declared is not None and size > declared) or total + size > limit:
                    raise ValidationError(
                        _("The files are larger than %(limit)s when unpacked.") % {"limit": _mb(limit)}
                    )
                digest.update(chunk)
                out.write(chunk)
        target.chmod(0o644)
        self.files[rel] = {"sha256": digest.hexdigest(), "size": size}

    def save(self) -> Bundle:
        if not self.files:
            raise ValidationError(_("There are no files in it."))
        self.bundle.files = self.files
        self.bundle.size = sum(f["size"] for f in self.files.values())
        self.bundle.file_count = len(self.files)
        os.rename(self.tmp, self.bundle.path)
        self.bundle.save()
        return self.bundle

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _build(source: str, fill) -> Bundle:
    writer = _Writer(source)
    try:
        fill(writer)
        return writer.save()
    except OSError as exc:
        raise ValidationError(_("The server could not store the files: %(error)s") % {"error": exc.strerror}) from None
    finally:
        writer.discard()


def _check_name(name: str) -> str:
    rel = safe_relative_path(name)
    if rel is None or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ValidationError(_("%(name)s is not a safe file name (absolute, or with ..).") % {"name": name})
    return rel


def from_uploads(files) -> Bundle:
    """Uploaded files: one zip is unpacked, anything else is stored as it is (by its own name)."""
    files = list(files)
    if len(files) == 1 and files[0].name.lower().endswith(".zip"):
        return from_zip(files[0], files[0].name)
    _, max_files = _limits()
    if len(files) > max_files:
        raise ValidationError(_("More than %(count)d files.") % {"count": max_files})

    def fill(writer):
        for upload in files:
            rel = _check_name(Path(upload.name).name)
            if rel in writer.files:
                raise ValidationError(_("%(name)s is there twice.") % {"name": rel})
            writer.add(rel, upload)

    return _build(", ".join(f.name for f in files), fill)


def _zip_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError:
            return info.filename


def _zip_members(fileobj) -> tuple[zipfile.ZipFile, list[tuple[str, zipfile.ZipInfo]]]:
    """The zip's files as (safe relative path, entry), checked as the module docstring says."""
    limit, max_files = _limits()
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError):
        raise ValidationError(_("This is not a zip file (or it is damaged).")) from None
    entries = archive.infolist()
    if len(entries) > max_files:
        raise ValidationError(_("The zip has more than %(count)d entries.") % {"count": max_files})
    if sum(info.file_size for info in entries) > limit:
        raise ValidationError(_("The files are larger than %(limit)s when unpacked.") % {"limit": _mb(limit)})
    members, seen = [], set()
    for info in entries:
        mode = info.external_attr >> 16
        filename = _zip_name(info)
        if stat.S_ISLNK(mode):
            raise ValidationError(_("%(name)s is a link; links are not accepted.") % {"name": filename})
        rel = _check_name(filename)
        if info.is_dir() or _ignored(rel):
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # zips made without Unix modes have none
            raise ValidationError(_("%(name)s is not a regular file.") % {"name": filename})
        if rel in seen:
            raise ValidationError(_("%(name)s is there twice.") % {"name": rel})
        seen.add(rel)
        members.append((rel, info))
    return archive, members


def _fill_from(archive, members):
    def fill(writer):
        for rel, info in members:
            try:
                with archive.open(info) as stream:
                    writer.add(rel, stream, declared=info.file_size)
            except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
                raise ValidationError(
                    _("%(name)s cannot be read from the zip: %(error)s") % {"name": rel, "error": exc}
                ) from None

    return fill


def from_zip(fileobj, name: str = "") -> Bundle:
    archive, members = _zip_members(fileobj)
    with archive:
        tops = {rel.split("/", 1)[0] for rel, _ in members}
        if len(tops) == 1 and all("/" in rel for rel, _ in members):
            members = [(rel.split("/", 1)[1], info) for rel, info in members]
        return _build(name or "zip", _fill_from(archive, members))


def zip_folders(fileobj) -> dict[str, set[str]]:
    """What is at the top of a zip, read from its table of contents (checked as above) and nothing stored:
    {top folder: the folders inside it}; files at the top are listed under "" (a feedback zip's folders are
    matched to students with this before anything is written)."""
    archive, members = _zip_members(fileobj)
    with archive:
        tops: dict[str, set[str]] = {}
        for rel, _info in members:
            top, _, rest = rel.partition("/")
            if not rest:
                tops.setdefault("", set()).add(top)
            else:
                tops.setdefault(top, set())
                if "/" in rest:
                    tops[top].add(rest.split("/", 1)[0])
        return tops


def from_zip_folders(fileobj, name: str = "", inside: str = "") -> dict[str, Bundle]:
    """A zip with one folder per student (returned feedback: `<folder>/<files>`, or `<inside>/<folder>/<files>`
    when everything is in the one folder `inside`): {folder name: its Bundle}. Files outside any student's
    folder are refused."""
    archive, members = _zip_members(fileobj)
    with archive:
        if inside:
            outside = [rel for rel, _info in members if not rel.startswith(inside + "/")]
            if outside:
                raise ValidationError(_("%(name)s is not inside a student's folder.") % {"name": outside[0]})
            members = [(rel[len(inside) + 1 :], info) for rel, info in members]
        by_folder: dict[str, list] = {}
        for rel, info in members:
            if "/" not in rel:
                raise ValidationError(_("%(name)s is not inside a student's folder.") % {"name": rel})
            folder, inner = rel.split("/", 1)
            by_folder.setdefault(folder, []).append((inner, info))
        return {
            folder: _build(f"{name or 'zip'}: {folder}", _fill_from(archive, entries))
            for folder, entries in sorted(by_folder.items())
        }


def from_folder(folder: Path) -> Bundle:
    """A folder under DATA_ROOT/course/, read without following links."""
    root = source_root().resolve()
    path = (root / folder).resolve() if not Path(folder).is_absolute() else Path(folder).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValidationError(_("Pick a folder inside %(root)s.") % {"root": root})
    if not path.is_dir() or Path(root / folder).is_symlink():
        raise ValidationError(_("%(folder)s is not a folder.") % {"folder": path})
    limit, max_files = _limits()
    listing, total = [], 0
    for current, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            full = Path(current) / name
            info = full.lstat()
            rel = full.relative_to(path).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise ValidationError(_("%(name)s is a link; links are not accepted.") % {"name": rel})
            if stat.S_ISREG(info.st_mode) and not _ignored(rel):
                listing.append(rel)
                total += info.st_size
            elif not stat.S_ISDIR(info.st_mode):
                raise ValidationError(_("%(name)s is not a regular file.") % {"name": rel})
        if len(listing) > max_files:
            raise ValidationError(_("More than %(count)d files.") % {"count": max_files})
        if total > limit:
            raise ValidationError(_("The files are larger than %(limit)s when unpacked.") % {"limit": _mb(limit)})

    def fill(writer):
        for rel in listing:
            fd = os.open(path / rel, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as stream:
                writer.add(rel, stream)

    return _build(str(path.relative_to(root.parent)), fill)
