"""The merge rules of a delivery and the rules of a copy (userspace/homefiles.py), each with real files in a real
home folder: the worker's own code on the same kind of folder the local spawner and shared swarm homes are.
A student's home is hostile ground: links, swapped folders, pipes, a full disk."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from userspace import homefiles
from userspace.homefiles import HomeError

DEST = "course/第二周"


def manifest(source: Path) -> dict[str, str]:
    return {
        p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(source.rglob("*"))
        if p.is_file()
    }


class Home:
    """A home folder and a hand-out's versions, delivered as the worker does (it remembers what it wrote)."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "home"
        self.root.mkdir()
        self.source = tmp_path / "v"
        self.remembered: dict[str, str] = {}
        self.version = 0

    def path(self, rel: str) -> Path:
        return self.root / DEST / rel

    def hand_out(self, files: dict[str, str], dest: str = DEST) -> dict:
        self.version += 1
        source = self.source.with_name(f"v{self.version}")
        for rel, text in files.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_text(text, encoding="utf-8")
        fd = homefiles.open_home(self.root)
        try:
            result = homefiles.deliver(fd, dest, source, manifest(source), self.remembered)
        finally:
            os.close(fd)
        self.remembered = result["files"]
        return result


@pytest.fixture
def home(tmp_path) -> Home:
    return Home(tmp_path)


def test_a_new_file_is_added_with_its_chinese_name(home):
    result = home.hand_out({"第二周作业.ipynb": "v1", "data/收入.csv": "a,b"})
    assert home.path("第二周作业.ipynb").read_text() == "v1"
    assert home.path("data/收入.csv").read_text() == "a,b"
    assert sorted(result["added"]) == ["data/收入.csv", "第二周作业.ipynb"]


def test_a_file_the_student_has_not_changed_is_updated(home):
    home.hand_out({"week2.ipynb": "v1"})
    result = home.hand_out({"week2.ipynb": "v2"})
    assert home.path("week2.ipynb").read_text() == "v2"
    assert result["updated"] == ["week2.ipynb"] and result["beside"] == []
    assert not home.path("week2.new.ipynb").exists()


def test_a_file_the_student_deleted_comes_back(home):
    home.hand_out({"week2.ipynb": "v1", "notes.md": "n1"})
    home.path("notes.md").unlink()
    result = home.hand_out({"week2.ipynb": "v2", "notes.md": "n1"})
    assert home.path("notes.md").read_text() == "n1"
    assert result["restored"] == ["notes.md"]


def test_a_file_the_student_changed_is_never_overwritten_and_the_new_version_arrives_beside_it(home):
    home.hand_out({"week2.ipynb": "v1"})
    home.path("week2.ipynb").write_text("my answers")
    result = home.hand_out({"week2.ipynb": "v2"})
    assert home.path("week2.ipynb").read_text() == "my answers"
    assert home.path("week2.new.ipynb").read_text() == "v2"
    assert result["beside"] == [{"file": f"{DEST}/week2.ipynb", "new": f"{DEST}/week2.new.ipynb"}]
    # A third version replaces the .new file the worker wrote (unchanged), never the student's.
    result = home.hand_out({"week2.ipynb": "v3"})
    assert home.path("week2.ipynb").read_text() == "my answers"
    assert home.path("week2.new.ipynb").read_text() == "v3"
    assert result["beside"] == [{"file": f"{DEST}/week2.ipynb", "new": f"{DEST}/week2.new.ipynb"}]


def test_a_new_name_the_student_took_is_kept_and_the_next_one_is_used(home):
    home.hand_out({"week2.ipynb": "v1"})
    home.path("week2.ipynb").write_text("mine")
    home.path("week2.new.ipynb").write_text("also mine")
    home.hand_out({"week2.ipynb": "v2"})
    assert home.path("week2.ipynb").read_text() == "mine"
    assert home.path("week2.new.ipynb").read_text() == "also mine"
    assert home.path("week2.new-2.ipynb").read_text() == "v2"


def test_a_file_the_student_made_before_the_first_hand_out_is_kept(home):
    home.path("week2.ipynb").parent.mkdir(parents=True)
    home.path("week2.ipynb").write_text("my own file of that name")
    home.hand_out({"week2.ipynb": "v1"})
    assert home.path("week2.ipynb").read_text() == "my own file of that name"
    assert home.path("week2.new.ipynb").read_text() == "v1"


def test_the_same_content_already_there_is_left_as_it_is(home):
    home.hand_out({"week2.ipynb": "v1"})
    before = home.path("week2.ipynb").stat()
    result = home.hand_out({"week2.ipynb": "v1"})
    assert result["unchanged"] == ["week2.ipynb"] and not result["updated"]
    assert home.path("week2.ipynb").stat().st_ino == before.st_ino


def test_delivering_twice_leaves_the_home_as_once(home):
    files = {"a.ipynb": "a", "sub/b.txt": "b"}
    home.hand_out(files)
    listing = sorted(p.relative_to(home.root).as_posix() for p in home.root.rglob("*"))
    home.version -= 1  # the same version again, as a restarted worker does it
    result = home.hand_out(files)
    assert sorted(p.relative_to(home.root).as_posix() for p in home.root.rglob("*")) == listing
    assert sorted(result["unchanged"]) == ["a.ipynb", "sub/b.txt"]


def test_files_dropped_from_a_new_version_stay_in_the_home(home):
    home.hand_out({"old.ipynb": "o", "week2.ipynb": "v1"})
    home.hand_out({"week2.ipynb": "v2"})
    assert home.path("old.ipynb").read_text() == "o"


def test_a_folder_the_student_replaced_by_a_file_is_kept_and_the_files_go_beside_it(home):
    home.hand_out({"data/x.csv": "1"})
    shutil.rmtree(home.path("data"))
    home.path("data").write_text("I put a file here")
    result = home.hand_out({"data/x.csv": "2"})
    assert home.path("data").read_text() == "I put a file here"
    assert (home.root / DEST / "data.new" / "x.csv").read_text() == "2"
    assert {"file": f"{DEST}/data/x.csv", "new": f"{DEST}/data.new/x.csv"} in result["beside"]


def test_a_link_in_the_home_is_never_followed_when_writing(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (home.root / "course").mkdir()
    (home.root / DEST).symlink_to(outside)  # the student points the hand-out's folder elsewhere
    (outside / "keep.txt").write_text("not yours")
    home.hand_out({"week2.ipynb": "v1", "keep.txt": "overwritten?"})
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "not yours"
    assert (home.root / f"{DEST}.new" / "week2.ipynb").read_text() == "v1"


def test_a_file_link_the_student_planted_is_not_written_through(home, tmp_path):
    home.hand_out({"week2.ipynb": "v1"})
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    home.path("week2.ipynb").unlink()
    home.path("week2.ipynb").symlink_to(victim)
    home.hand_out({"week2.ipynb": "v2"})
    assert victim.read_text() == "precious"
    assert home.path("week2.ipynb").is_symlink()
    assert home.path("week2.new.ipynb").read_text() == "v2"


def test_temporary_files_of_a_killed_worker_are_removed_and_never_seen_as_the_file(home):
    home.hand_out({"week2.ipynb": "v1"})
    left = home.path(".cfps-tmp-0123456789ab")
    left.write_text("half")
    home.hand_out({"week2.ipynb": "v2"})
    assert not left.exists()
    assert sorted(p.name for p in home.path("").iterdir()) == ["week2.ipynb"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_files_written_as_root_belong_to_the_notebook_user(tmp_path):
    root = tmp_path / "home"
    (tmp_path / "v" / "sub").mkdir(parents=True)
    (tmp_path / "v" / "sub" / "a.txt").write_text("a")
    root.mkdir()
    fd = homefiles.open_home(root)
    try:
        homefiles.deliver(fd, DEST, tmp_path / "v", manifest(tmp_path / "v"), {}, owner=(1000, 100))
    finally:
        os.close(fd)
    for path in [root / "course", root / DEST, root / DEST / "sub", root / DEST / "sub" / "a.txt"]:
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (1000, 100), path
    assert (root / DEST / "sub" / "a.txt").stat().st_mode & 0o777 == 0o644


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB filesystem (tmpfs) holding a home: writing past it fails with ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_with_a_clear_error_and_leaves_no_half_written_file(small_disk, tmp_path):
    source = tmp_path / "v"
    source.mkdir()
    (source / "a-small.txt").write_text("small")
    (source / "b-big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (small_disk / "home").mkdir()
    fd = homefiles.open_home(small_disk / "home")
    try:
        with pytest.raises(HomeError) as raised:
            homefiles.deliver(fd, DEST, source, manifest(source), {})
    finally:
        os.close(fd)
    assert raised.value.code == "disk_full" and "full" in str(raised.value)
    folder = small_disk / "home" / DEST
    assert sorted(p.name for p in folder.iterdir()) == ["a-small.txt"]  # whole, and no temporary file
    assert (folder / "a-small.txt").read_text() == "small"
    assert raised.value.details["partial"]["added"] == ["a-small.txt"]


# --- taking a copy -------------------------------------------------------------------------------------------
def collect(root: Path, target: Path, folder: str = "assignments/hw1", max_bytes: int = 10**6, max_files: int = 100):
    fd = homefiles.open_home(root)
    try:
        return homefiles.collect(fd, folder, homefiles.FolderSink(target), max_bytes, max_files)
    finally:
        os.close(fd)


@pytest.fixture
def assignment_folder(tmp_path) -> Path:
    folder = tmp_path / "home" / "assignments" / "hw1"
    (folder / "sub").mkdir(parents=True)
    (folder / "答案.ipynb").write_text("answers")
    (folder / "sub" / "data.csv").write_text("1,2")
    return folder


def test_a_copy_takes_the_folder_as_it_is_with_sizes_and_hashes(assignment_folder, tmp_path):
    summary = collect(tmp_path / "home", tmp_path / "copy")
    assert (tmp_path / "copy" / "答案.ipynb").read_text() == "answers"
    assert (tmp_path / "copy" / "sub" / "data.csv").read_text() == "1,2"
    assert summary["files"] == [
        {"path": "sub/data.csv", "size": 3, "sha256": hashlib.sha256(b"1,2").hexdigest()},
        {"path": "答案.ipynb", "size": 7, "sha256": hashlib.sha256(b"answers").hexdigest()},
    ]
    assert summary["size"] == 10 and summary["skipped"] == []


def test_a_copy_never_follows_links_out_of_the_folder(assignment_folder, tmp_path):
    secret = tmp_path / "someone-else.txt"
    secret.write_text("another student's work")
    (assignment_folder / "steal.txt").symlink_to(secret)
    (assignment_folder / "etc").symlink_to("/etc")
    summary = collect(tmp_path / "home", tmp_path / "copy")
    assert not (tmp_path / "copy" / "steal.txt").exists() and not (tmp_path / "copy" / "etc").exists()
    assert {"path": "steal.txt", "why": "link"} in summary["skipped"]
    assert {"path": "etc", "why": "link"} in summary["skipped"]


def test_a_handed_in_folder_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "home" / "assignments").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("x")
    (tmp_path / "home" / "assignments" / "hw1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(HomeError) as raised:
        collect(tmp_path / "home", tmp_path / "copy")
    assert raised.value.code == "not_a_folder"


def test_a_pipe_in_the_folder_is_skipped_without_blocking(assignment_folder, tmp_path):
    os.mkfifo(assignment_folder / "pipe")
    summary = collect(tmp_path / "home", tmp_path / "copy")
    assert {"path": "pipe", "why": "not a regular file"} in summary["skipped"]


def test_feedback_and_checkpoints_are_not_handed_in(assignment_folder, tmp_path):
    (assignment_folder / "feedback").mkdir()
    (assignment_folder / "feedback" / "comments.txt").write_text("from staff")
    (assignment_folder / ".ipynb_checkpoints").mkdir()
    (assignment_folder / ".ipynb_checkpoints" / "答案-checkpoint.ipynb").write_text("old")
    summary = collect(tmp_path / "home", tmp_path / "copy")
    assert [f["path"] for f in summary["files"]] == ["sub/data.csv", "答案.ipynb"]


def test_a_folder_over_the_size_limit_is_refused_with_its_size(assignment_folder, tmp_path):
    (assignment_folder / "big.bin").write_bytes(b"x" * 5000)
    with pytest.raises(HomeError) as raised:
        collect(tmp_path / "home", tmp_path / "copy", max_bytes=4096)
    assert raised.value.code == "too_big"
    assert raised.value.details == {"size": 5010, "limit": 4096}


def test_a_folder_with_too_many_files_is_refused(assignment_folder, tmp_path):
    for n in range(20):
        (assignment_folder / f"f{n}.txt").write_text("x")
    with pytest.raises(HomeError) as raised:
        collect(tmp_path / "home", tmp_path / "copy", max_files=10)
    assert raised.value.code == "too_many_files"


def test_a_missing_folder_is_named(tmp_path):
    (tmp_path / "home").mkdir()
    with pytest.raises(HomeError) as raised:
        collect(tmp_path / "home", tmp_path / "copy")
    assert raised.value.code == "no_folder" and "assignments/hw1" in str(raised.value)
