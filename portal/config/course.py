"""Running a course: where hand-outs and hand-ins are kept, their limits, and how the worker reaches homes.

Read by the portal (limits on uploads and hand-ins, `settings.COURSE`) and by the course worker
(`python manage.py course_worker`, the only process that touches students' homes; userspace/homes.py).

Keys (.env):
- COURSE_ROOT: the folder of uploaded material (immutable versions, `bundles/`) and collected hand-ins
  (`handins/`). Empty: var/course. Backups must include it (deploy/backup.py).
- COURSE_HANDIN_LIMIT: the largest hand-in (one student's assignment folder), e.g. 50M; the default of each
  new assignment, which staff can change per assignment.
- COURSE_HANDIN_MAX_FILES: the most files in one hand-in (a folder of 100 000 tiny files is refused, not copied).
- COURSE_UPLOAD_LIMIT, COURSE_UPLOAD_MAX_FILES: the largest upload (a zip's total uncompressed size) and its
  most entries; a zip bomb is refused before anything is written.
- COURSE_HOME_ACCESS: how the worker reaches a home that is a Docker volume or a folder it cannot write:
  `auto` (folders it can write directly, anything else through a short helper container of the notebook
  image), `container` (always a helper container), `direct` (never one: the worker must be able to write
  every home, e.g. the local spawner).

This module imports nothing from Django so that `userspace/` can use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from portal.config.containers import parse_size
from portal.config.env import BASE_DIR, Env, EnvError, var_dir

ACCESS_MODES = ("auto", "container", "direct")
MB = 1024**2


@dataclass(frozen=True)
class Course:
    root: Path
    handin_limit: int  # bytes
    handin_max_files: int
    upload_limit: int  # bytes, uncompressed
    upload_max_files: int
    home_access: str

    @property
    def bundles_dir(self) -> Path:
        return self.root / "bundles"

    @property
    def handins_dir(self) -> Path:
        return self.root / "handins"

    @property
    def handin_limit_mb(self) -> int:
        return max(1, self.handin_limit // MB)


def _positive(env: Env, key: str, default: int) -> int:
    value = env.int(key, default)
    if value < 1:
        raise EnvError(f"{key} must be 1 or more, not {value}")
    return value


def from_env(env: Env) -> Course:
    root = env.get("COURSE_ROOT")
    path = Path(root) if root else var_dir() / "course"
    access = env.get("COURSE_HOME_ACCESS", "auto").strip().lower()
    if access not in ACCESS_MODES:
        raise EnvError(f"COURSE_HOME_ACCESS must be one of {', '.join(ACCESS_MODES)}, not {access!r}")
    return Course(
        root=path if path.is_absolute() else BASE_DIR / path,
        handin_limit=parse_size(env.get("COURSE_HANDIN_LIMIT", "50M"), "COURSE_HANDIN_LIMIT"),
        handin_max_files=_positive(env, "COURSE_HANDIN_MAX_FILES", 2000),
        upload_limit=parse_size(env.get("COURSE_UPLOAD_LIMIT", "500M"), "COURSE_UPLOAD_LIMIT"),
        upload_max_files=_positive(env, "COURSE_UPLOAD_MAX_FILES", 5000),
        home_access=access,
    )
