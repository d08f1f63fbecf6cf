"""Owner-only files under var/: the databases, logs, generated secrets, the hub's state and, with the local
spawner, the users' homes. A session key or a hub token read from a world-readable database is a login.

Rules:
- Every process that writes there runs with umask 077: run.sh (before it opens the logs and starts the
  processes; not while it installs .venv or node_modules, which other users run), manage.py (`for_command`),
  gunicorn (deploy/gunicorn.conf.py) and the hub (hubconfig/jupyterhub_config.py).
- Commands that make files for other readers keep the caller's umask and set their own modes: build_image
  (the notebook image's root filesystem), setup_volumes (the shared volumes the notebook user reads),
  collectstatic (public files, served to anyone) and compilemessages (the catalogues in locale/).
- `tighten(var)` takes group and other bits off what is already in it (files and folders, never through a
  symlink), except the public static files, the image build and the containers' shared volumes
  (`bootstrap` passes those). var/ itself keeps its mode: on a server it belongs to root and the service
  user must pass through it to var/hub/. Idempotent; `bootstrap`, which run.sh runs on every start, calls it.
This module imports nothing from Django: the hub's configuration and gunicorn's use it too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
KEEPS_UMASK = frozenset({"build_image", "setup_volumes", "collectstatic", "compilemessages"})


def restrict_umask() -> None:
    os.umask(OWNER_ONLY_UMASK)


def for_command(argv: list[str]) -> None:
    """manage.py: owner-only files, unless the command writes files for other readers (see the rules)."""
    if len(argv) > 1 and argv[1] in KEEPS_UMASK:
        return
    restrict_umask()


def tighten(root: Path, exclude: list[Path] | tuple[Path, ...] = (), dry_run: bool = False) -> list[Path]:
    """Remove group/other permissions below `root`; returns what was (or, with dry_run, would be) changed."""
    root = Path(root)
    skip = {Path(p).resolve() for p in exclude}
    changed: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return changed

    def fix(path: Path) -> None:
        try:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if stat.S_ISLNK(os.lstat(path).st_mode) or not mode & 0o077:
                return
            if not dry_run:
                os.chmod(path, mode & 0o700)
        except FileNotFoundError:  # removed meanwhile (a SQLite journal)
            return
        changed.append(path)

    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if (here / d).resolve() not in skip and not (here / d).is_symlink()]
        for name in dirs + files:
            fix(here / name)
    return changed
