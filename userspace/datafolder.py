"""The shared, read-only data folder every user sees at ~/data, and how it is filled.

Layout (the same in a container, where it is mounted read-only at /home/jovyan/data, and for the embedded
local spawner, where it is $CFPS_VAR_DIR/shared/data linked into each home):

    notebooks/   the example notebooks (repo: notebooks/); a start hook copies them into a new home once
    lib/         importable helpers for notebooks, e.g. `cfps` with sql() (repo: singleuser/notebook/lib/)
    startup/     IPython start-up files run in every kernel (repo: singleuser/notebook/startup/)
    sample/      the synthetic sample dataset for the embedded default (written by load_sample_data)

Every user server gets in its environment: CFPS_DATA_DIR (this folder), PYTHONPATH with CFPS_DATA_DIR/lib,
and the dataset connection (see the dataset issue). Only sync_data_folder() writes here, and it never
deletes what it did not put there (sample/ and anything an operator added stay).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from portal.config.env import BASE_DIR

SOURCES = {
    "notebooks": BASE_DIR / "notebooks",
    "lib": BASE_DIR / "singleuser" / "notebook" / "lib",
    "startup": BASE_DIR / "singleuser" / "notebook" / "startup",
}


def sync_data_folder(dest: Path, dry_run: bool = False) -> list[str]:
    """Copy notebooks/, lib/ and startup/ into `dest`, replacing older copies of those three folders.
    Returns what it did (or would do), one line per folder."""
    done = []
    for name, source in SOURCES.items():
        target = Path(dest) / name
        done.append(f"{source} -> {target}")
        if dry_run or not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return done
