"""`restore` runs as root and must not trust a backup archive beyond its contents (issue 20.8): a forged
archive, with valid checksums in its manifest, that names paths, carries links or devices, or binds a volume
to a host folder, is refused in one line before anything changes, and writes nothing outside the places
`backup` saves from. (The SQL dump's shell lines: tests/ops/test_backup_mariadb.py.)

Each forged archive is a real `backup --without-homes` archive with parts added or changed, checksums
recomputed, as an attacker who can write the backup folder would make it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.live import PortalError, PortalProcess, free_port
from tests.ops.conftest import RUN, docker


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plain(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info, b""


def tarball(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """A gzip'd tar of `members`, as `backup` writes a local folder."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue())


def forge(base: Path, out: Path, members=(), parts=(), edit=None) -> Path:
    """`base` with `edit(manifest)` applied (a part it drops leaves with its member), then `members` ((TarInfo,
    data)) added and `parts` (manifest entries without size and checksum, in the order of `members`) listed;
    checksums as `backup` computes them."""
    with tarfile.open(base) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        manifest = json.load(src.extractfile("manifest.json"))
        listed = {part["member"] for part in manifest["parts"]}
        if edit:
            edit(manifest)  # may drop parts: their members go too
        kept = listed & {part["member"] for part in manifest["parts"]}
        for member in src.getmembers():
            if member.name in kept:
                dst.addfile(member, src.extractfile(member))
        for (info, data), part in zip(members, parts, strict=False):
            dst.addfile(info, io.BytesIO(data) if info.isreg() else None)
            if part is not None:
                manifest["parts"].append({"member": info.name, "size": len(data), "sha256": sha256(data), **part})
        for info, data in members[len(parts) :]:
            dst.addfile(info, io.BytesIO(data) if info.isreg() else None)
        text = json.dumps(manifest).encode()
        dst.addfile(plain("manifest.json", text)[0], io.BytesIO(text))
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A genuine archive: a prepared portal's databases and secrets."""
    root = tmp_path_factory.mktemp("genuine")
    portal = PortalProcess(root / "portal")
    portal.manage("migrate", "--noinput")
    portal.manage("backup", "--without-homes", "--output", str(root / "backups"))
    return next((root / "backups").glob("cfps-backup-*.tar"))


@pytest.fixture
def victim(tmp_path) -> PortalProcess:
    """A fresh clone after `./run.sh --prepare`, ready for a restore (its hub's port free: nothing runs)."""
    portal = PortalProcess(tmp_path / "victim", extra_env={"HUB_PORT": str(free_port())})
    portal.manage("migrate", "--noinput")
    return portal


def restore_refused(portal: PortalProcess, archive: Path) -> str:
    with pytest.raises(PortalError) as refused:
        portal.manage("restore", str(archive), "--force")
    message = str(refused.value).split("--- stderr ---\n", 1)[1].strip()
    assert message.startswith("CommandError: ") and "\n" not in message, message  # one line, no traceback
    return message


def var(portal: PortalProcess) -> Path:
    return Path(portal.env["CFPS_VAR_DIR"])


# --- every case: refused in one line, before anything changes --------------------------------------------
SECRET_LINK = {"kind": "file", "key": "secret-LINK", "mode": 0o600}


def secret_path(victim, tmp_path):
    escaped = var(victim).parent / "escaped"  # var/secrets/../../escaped
    return (
        [plain("files/secret-../../escaped", b"written by a forged archive\n")],
        [{"kind": "file", "key": "secret-../../escaped", "mode": 0o644, "path": "/x"}],
        escaped,
    )


def absolute_member(victim, tmp_path):
    return (
        [plain("/etc/cron.d/cfps-forged", b"* * * * * root true\n")],
        [{"kind": "file", "key": "env", "mode": 0o600}],
        None,
    )


def symlink_member(victim, tmp_path):
    return [special("files/secret-LINK", tarfile.SYMTYPE, "/etc/hostname")], [SECRET_LINK], None


def hardlink_member(victim, tmp_path):
    return [special("files/secret-LINK", tarfile.LNKTYPE, "portal-db.sqlite3")], [SECRET_LINK], None


def device_member(victim, tmp_path):
    return [special("files/secret-LINK", tarfile.CHRTYPE)], [SECRET_LINK], None


def folder_with_a_hard_link_out(victim, tmp_path):
    target = tmp_path / "not-yours.txt"
    target.write_text("a file outside var/\n")
    target.chmod(0o600)
    link = special("evil", tarfile.LNKTYPE, os.path.relpath(target, var(victim) / "users"))
    link[0].mode = 0o666
    data = tarball(link)
    return [plain("dirs/users.tar.gz", data)], [{"kind": "dir", "key": "users"}], None


def folder_with_a_device(victim, tmp_path):
    data = tarball(special("disk", tarfile.BLKTYPE))
    return [plain("dirs/users.tar.gz", data)], [{"kind": "dir", "key": "users"}], None


def folder_written_through_its_own_link(victim, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tarball(special("l", tarfile.SYMTYPE, str(outside)), plain("l/planted.txt", b"through the link\n"))
    return [plain("dirs/team-shared.tar.gz", data)], [{"kind": "dir", "key": "team-shared"}], outside / "planted.txt"


def unknown_folder_key(victim, tmp_path):
    return [plain("dirs/../../x.tar.gz", tarball())], [{"kind": "dir", "key": "../../x"}], None


def volume_named_by_a_path(victim, tmp_path):
    info = {"driver": "local", "options": {}, "labels": {}}
    return [plain("volumes//etc.tar.gz", tarball())], [{"kind": "volume", "volume": "/etc", "info": info}], None


def no_portal_database(victim, tmp_path):
    def drop(manifest):
        manifest["parts"] = [part for part in manifest["parts"] if part["kind"] != "portal-db"]

    return [], [], None, drop


def listed_twice(victim, tmp_path):
    def twice(manifest):
        manifest["parts"].append(dict(manifest["parts"][0]))

    return [], [], None, twice


CASES = [
    secret_path, absolute_member, symlink_member, hardlink_member, device_member, folder_with_a_hard_link_out,
    folder_with_a_device, folder_written_through_its_own_link, unknown_folder_key, volume_named_by_a_path,
    no_portal_database, listed_twice,
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_a_forged_archive_is_refused_in_one_line_before_anything_changes(base, victim, tmp_path, case):
    members, parts, planted, *edit = case(victim, tmp_path)
    archive = forge(base, tmp_path / "forged.tar", members, parts, *edit)
    secrets_before = {p.name: p.read_bytes() for p in (var(victim) / "secrets").iterdir()}
    database_before = Path(victim.env["DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()
    message = restore_refused(victim, archive)
    assert "refusing the archive" in message, message
    assert planted is None or not planted.exists(), f"{planted} was written"
    assert {p.name: p.read_bytes() for p in (var(victim) / "secrets").iterdir()} == secrets_before
    assert Path(victim.env["DATABASE_URL"].removeprefix("sqlite:///")).read_bytes() == database_before
    assert not (var(victim) / "users").exists()
    outside = tmp_path / "not-yours.txt"
    if outside.exists():
        assert stat.S_IMODE(outside.stat().st_mode) == 0o600 and outside.stat().st_nlink == 1


def test_a_volume_bound_to_a_host_folder_outside_var_and_data_root_is_refused(base, victim, tmp_path, docker_engine):
    host_folder = tmp_path / "host-folder"
    host_folder.mkdir()
    volume = f"cfps-forged-{RUN}"
    info = {"driver": "local", "options": {"type": "none", "o": "bind", "device": str(host_folder)}, "labels": {}}
    data = tarball(plain("planted.txt", b"written as root\n"))
    archive = forge(
        base, tmp_path / "forged.tar", [plain(f"volumes/{volume}.tar.gz", data)],
        [{"kind": "volume", "volume": volume, "info": info}],
    )  # fmt: skip
    try:
        message = restore_refused(victim, archive)
        assert f"volume {volume} binds {str(host_folder)!r}, outside var/ and DATA_ROOT" in message, message
        assert not (host_folder / "planted.txt").exists()
        assert docker("volume", "inspect", volume, check=False).returncode != 0, "the volume was created"
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_the_oidc_key_goes_only_where_the_restored_env_names_it(base, victim, tmp_path):
    planted = tmp_path / "planted-key.pem"
    key = [plain("files/oidc-key", b"-----BEGIN PRIVATE KEY-----\nforged\n")]
    archive = forge(base, tmp_path / "forged.tar", key, [{"kind": "file", "key": "oidc-key", "mode": 0o600,
                                                           "path": str(planted)}])  # fmt: skip
    result = victim.manage("restore", str(archive), "--force")
    assert "oidc-key: skipped" in result.stdout, result.stdout
    assert not planted.exists()
