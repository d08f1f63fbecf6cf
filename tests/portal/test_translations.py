"""Every user-visible string is translatable and translated: the committed Chinese catalogue is complete,
and re-extracting the strings from today's source finds nothing it lacks."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.live import prepare_secrets

REPO = Path(__file__).resolve().parents[2]
PO = REPO / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def msgfmt_statistics(po: Path) -> str:
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(po)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_chinese_catalogue_is_complete_and_valid():
    stats = msgfmt_statistics(PO)
    assert re.match(r"\d+ translated messages?\.$", stats.strip()), stats


def test_no_source_string_is_missing_from_the_chinese_catalogue(tmp_path):
    for folder in (
        "accounts",
        "audit",
        "portal",
        "deploy",
        "staff",
        "course",
        "userspace",
        "templates",
        "hubconfig",
        "locale",
    ):
        if (REPO / folder).exists():
            shutil.copytree(
                REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.mo", "node_modules")
            )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "PYTHONPATH": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    env["CFPS_VAR_DIR"] = str(tmp_path / "var")  # the copy's own var/, with the secrets its settings read
    prepare_secrets(env)
    result = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--no-location"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stats = msgfmt_statistics(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert "untranslated" not in stats and "fuzzy" not in stats, f"run makemessages and translate: {stats}"
