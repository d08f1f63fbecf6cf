"""Faults the system survives, each against real services: the portal's MariaDB stops and starts again,
the disk under var/ fills up. Each test starts its OWN database server or filesystem (tests/ops/services.py,
a loop-mounted image), never touching the machine's shared ones."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from http import HTTPStatus
from pathlib import Path

import pytest

from tests.deploy.conftest import require_root, require_tool
from tests.e2e import flows
from tests.live import PortalProcess
from tests.ops.services import OwnMariaDB
from tests.ops.test_health import lines_by_part, status

FACTS = """
import json
from accounts.models import InviteCode, InviteRedemption, User
code = InviteCode.objects.get(code=CODE_)
print(json.dumps({"users": sorted(User.objects.filter(is_staff=False).values_list("username", flat=True)),
                  "redemptions": InviteRedemption.objects.count(), "uses": code.use_count}))
""".replace("CODE_", repr(flows.INVITE_CODE))


def facts(portal) -> dict:
    import json

    return json.loads(portal.manage("shell", "-c", FACTS).stdout.strip().splitlines()[-1])


def post_signup(portal, client, form, username: str):
    data = {"username": username, "password1": flows.PASSWORD, "password2": flows.PASSWORD,
            "invite_code": flows.INVITE_CODE}  # fmt: skip
    return flows.post_form(portal, client, form, data)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if value := predicate():
                return value
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def test_portal_answers_a_translated_503_while_its_database_is_down_and_recovers_by_itself(tmp_path):
    with OwnMariaDB(tmp_path) as db:
        db.sql("CREATE DATABASE cfps CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        env = {"DATABASE_URL": db.url("cfps"), "INVITE_CODES": flows.INVITE_CODE}
        with PortalProcess(tmp_path / "portal", extra_env=env, worker=True) as portal:
            portal.manage("bootstrap")
            ann, newcomer = flows.new_client(portal), flows.new_client(portal, **{"Accept-Language": "zh-hans"})
            flows.signup(portal, ann, "ann")
            form = newcomer.get("/accounts/signup/")

            db.stop()
            page = ann.get("/")  # a logged-in student: her session lives in the database
            assert page.status_code == HTTPStatus.SERVICE_UNAVAILABLE, page.text[:500]
            assert "cannot reach its database" in page.text and page.headers["retry-after"] == "60"
            refused = post_signup(portal, newcomer, form, "bob")
            assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert "暂时无法使用" in refused.text and "Traceback" not in refused.text
            health = newcomer.get("/healthz")
            assert health.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert health.json() == {"database": "fail", "cache": "ok", "worker": "fail"}

            db.start()  # same data folder, same port; the portal is not restarted
            wait_for(lambda: newcomer.get("/healthz").status_code == HTTPStatus.OK, 30, "healthz answers 200 again")
            assert flows.logged_in_as(ann.get("/").text) == "ann"  # her session survived
            flows.signup(portal, newcomer, "bob")
            # bob's refused sign-up left nothing behind: every account has its redemption, counted once.
            assert facts(portal) == {"users": ["ann", "bob"], "redemptions": 2, "uses": 2}
            ann.close()
            newcomer.close()


@pytest.fixture
def small_var(tmp_path):
    """var/ on a 64 MB ext4 image of its own, loop-mounted (the machine's disks are never filled)."""
    require_root("mount a loop device")
    mkfs, mount, umount = (require_tool(name, "e2fsprogs mount") for name in ("mkfs.ext4", "mount", "umount"))
    image, folder = tmp_path / "var.img", tmp_path / "var"
    folder.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run([mkfs, "-q", "-F", "-m", "0", str(image)], check=True)  # -m 0: no blocks kept for root
    subprocess.run([mount, "-o", "loop", str(image), str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run([umount, "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write one file until the filesystem refuses another byte; returns it."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as fh:
        while True:  # the last partial block
            fh.write(b"\0" * 512)
    return filler


def test_signup_on_a_full_disk_fails_with_a_clear_page_corrupts_nothing_and_works_once_space_is_freed(
    small_var, tmp_path
):
    database = small_var / "portal.sqlite3"
    env = {"CFPS_VAR_DIR": str(small_var), "DATABASE_URL": f"sqlite:///{database}", "INVITE_CODES": flows.INVITE_CODE}
    with PortalProcess(tmp_path / "portal", extra_env=env) as portal:
        portal.manage("bootstrap")
        with flows.new_client(portal) as ann, flows.new_client(portal) as bob:
            flows.signup(portal, ann, "ann")
            form = bob.get("/accounts/signup/")
            filler = fill(small_var)

            refused = post_signup(portal, bob, form, "bob")
            assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE, refused.text[:500]
            assert "The server's disk is full" in refused.text and "Nothing was saved" in refused.text
            assert lines_by_part(status(portal).stdout)["disk var/"] == "FAIL"  # what the operator sees
            filler.unlink()
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                # the refused sign-up left nothing behind
                assert [name for (name,) in db.execute("SELECT username FROM accounts_user WHERE NOT is_staff")] == [
                    "ann"
                ]

            flows.signup(portal, bob, "bob")
            assert flows.logged_in_as(ann.get("/").text) == "ann"
    assert facts(portal) == {"users": ["ann", "bob"], "redemptions": 2, "uses": 2}
