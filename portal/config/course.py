"""Running a course: where hand-outs and hand-ins are kept, their limits, and how the worker reaches homes.

Read by the portal (limits on uploads and hand-ins, `settings.COURSE`) and by the course worker
(`python manage.py course_worker`, the only process that touches students' homes; userspace/homes.py).

Keys (.env; declared with their defaults in portal/config/table.py): COURSE_ROOT, COURSE_HANDIN_LIMIT,
COURSE_HANDIN_MAX_FILES, COURSE_UPLOAD_LIMIT, COURSE_UPLOAD_MAX_FILES, COURSE_HOME_ACCESS, COURSE_HELPER_BATCH,
WARMUP_CONCURRENCY, WARMUP_GRACE_MINUTES (warm-ups, course/warmup.py: the worker runs them too).

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
    helper_batch: int  # homes per helper container (userspace/homes.py Homes.batch)
    warmup_concurrency: int = 4  # servers a warm-up starts at once
    warmup_grace_minutes: int = 30  # the culler leaves a warmed server alone this long

    @property
    def bundles_dir(self) -> Path:
        return self.root / "bundles"

    @property
    def handins_dir(self) -> Path:
        return self.root / "handins"

    @property
    def handin_limit_mb(self) -> int:
        return max(1, self.handin_limit // MB)


def _positive(env: Env, key: str) -> int:
    value = env.int(key)
    if value is None or value < 1:
        raise EnvError(f"{key} must be 1 or more, not {value}")
    return value


def from_env(env: Env) -> Course:
    root = env.get("COURSE_ROOT")
    path = Path(root) if root else var_dir() / "course"
    access = env.get("COURSE_HOME_ACCESS").strip().lower()
    if access not in ACCESS_MODES:
        raise EnvError(f"COURSE_HOME_ACCESS must be one of {', '.join(ACCESS_MODES)}, not {access!r}")
    return Course(
        root=path if path.is_absolute() else BASE_DIR / path,
        handin_limit=parse_size(env.get("COURSE_HANDIN_LIMIT"), "COURSE_HANDIN_LIMIT"),
        handin_max_files=_positive(env, "COURSE_HANDIN_MAX_FILES"),
        upload_limit=parse_size(env.get("COURSE_UPLOAD_LIMIT"), "COURSE_UPLOAD_LIMIT"),
        upload_max_files=_positive(env, "COURSE_UPLOAD_MAX_FILES"),
        home_access=access,
        helper_batch=_positive(env, "COURSE_HELPER_BATCH"),
        warmup_concurrency=_positive(env, "WARMUP_CONCURRENCY"),
        warmup_grace_minutes=_grace(env),
    )


# JupyterHub refuses activity stamped more than 59 minutes ahead (apihandlers/users.py _parse_timestamp); the
# grace is given to the culler as a server's last activity that far ahead at most (course/warmup.py).
MOST_MINUTES_AHEAD = 55


def _grace(env: Env) -> int:
    grace = env.int("WARMUP_GRACE_MINUTES")
    if grace is None or grace < 0:
        raise EnvError(f"WARMUP_GRACE_MINUTES must be 0 or more, not {grace}")
    idle = env.int("HUB_IDLE_TIMEOUT_SECONDS") or 0
    if idle and grace > idle // 60 + MOST_MINUTES_AHEAD:
        raise EnvError(
            f"WARMUP_GRACE_MINUTES={grace} is more than HUB_IDLE_TIMEOUT_SECONDS/60 + {MOST_MINUTES_AHEAD} "
            f"({idle // 60 + MOST_MINUTES_AHEAD}): the hub takes a server's activity at most an hour ahead"
        )
    return grace
