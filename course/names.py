"""Names of things in students' homes and on the server.

Rules:
- A folder name handed out into homes comes from a title: Chinese and other letters stay, and so do spaces
  inside; what a folder name cannot hold on Linux or Windows (`/ \\ : * ? " < > |`, control characters) becomes
  `_`, and leading or trailing dots and spaces go (no hidden folder, no `..`). At most 100 characters.
- A relative path of a handed-out or handed-in file is made of such names joined by `/`: never absolute,
  never `.` or `..`, never empty parts.
- A name written for Windows (the folders and files of a zip staff download, `windows_name`): the same
  characters become `_`, trailing dots and spaces go, a reserved device name (CON, PRN, AUX, NUL, COM1-9,
  LPT1-9, with or without an extension, in any case) gets a `_` in front; `windows_names` also keeps two
  names of one folder apart when Windows would take them for one (same letters in another case), adding
  `~2`, `~3`... before the extension.
"""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MAX_NAME = 100
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def new_key() -> str:
    return uuid.uuid4().hex


def folder_name(title: str) -> str:
    name = _UNSAFE.sub("_", " ".join(str(title).split())).strip(" .")
    return name[:MAX_NAME].strip(" .") or "untitled"


def validate_folder_name(value: str) -> None:
    if value and folder_name(value) != value:
        raise ValidationError(
            _('Not a folder name: no / \\ : * ? " < > |, no leading or trailing dot or space (e.g. %(example)s).'),
            params={"example": folder_name(value)},
        )


WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}


def windows_name(name: str, limit: int = MAX_NAME) -> str:
    """`name` as one file or folder name Windows accepts (module rules)."""
    name = _UNSAFE.sub("_", str(name)).rstrip(" .")
    if len(name) > limit:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and stem and len(ext) <= 10 else ""
        name = (name[: limit - len(keep) - 1] + "." + keep if keep else name[:limit]).rstrip(" .")
    if not name or name.strip(".") == "":
        return "_"
    if name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        name = "_" + name
    return name


def distinct_name(name: str, taken: set[str]) -> str:
    """`name`, or `name~2`, `name~3`... (before the extension), whichever is not in `taken` in any case; it is
    added to `taken` (casefolded)."""
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}~{n}.{ext}" if dot and stem else f"{name}~{n}"
    taken.add(candidate.casefold())
    return candidate


def windows_names(names) -> dict[str, str]:
    """{name: its Windows name}, distinct even where Windows ignores case (module rules)."""
    taken: set[str] = set()
    return {name: distinct_name(windows_name(name), taken) for name in dict.fromkeys(names)}


def windows_paths(paths) -> dict[str, str]:
    """{relative path: the same with every part a Windows name}, two parts of one folder never taken for one."""
    result, renamed, taken = {}, {}, {}
    for path in sorted(paths):
        parts = path.split("/")
        for depth, part in enumerate(parts):
            key = "/".join(parts[: depth + 1])
            if key not in renamed:
                renamed[key] = distinct_name(windows_name(part), taken.setdefault("/".join(parts[:depth]), set()))
        result[path] = "/".join(renamed["/".join(parts[: depth + 1])] for depth in range(len(parts)))
    return result


def safe_relative_path(path: str) -> str | None:
    """`path` as a/b/c when it is a safe relative path, else None."""
    parts = str(path).replace("\\", "/").split("/")
    parts = [part for part in parts if part not in ("", ".")] if not str(path).startswith("/") else None
    if not parts or any(part == ".." or "\x00" in part for part in parts):
        return None
    return "/".join(parts)
