"""Names of things in students' homes and on the server.

Rules:
- A folder name handed out into homes comes from a title: Chinese and other letters stay, and so do spaces
  inside; what a folder name cannot hold on Linux or Windows (`/ \\ : * ? " < > |`, control characters) becomes
  `_`, and leading or trailing dots and spaces go (no hidden folder, no `..`). At most 100 characters.
- A relative path of a handed-out or handed-in file is made of such names joined by `/`: never absolute,
  never `.` or `..`, never empty parts.
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


def safe_relative_path(path: str) -> str | None:
    """`path` as a/b/c when it is a safe relative path, else None."""
    parts = str(path).replace("\\", "/").split("/")
    parts = [part for part in parts if part not in ("", ".")] if not str(path).startswith("/") else None
    if not parts or any(part == ".." or "\x00" in part for part in parts):
        return None
    return "/".join(parts)
