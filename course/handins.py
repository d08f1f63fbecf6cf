"""An assignment's hand-ins as staff see them: one row per student, all hand-ins as one zip, and the folders of
a zip of annotated files matched back to students.

Rules:
- The table lists every student the assignment is for now (course.models.Handout.students) and anyone else
  with a hand-in that counts (a student who left the group keeps their row, marked). The hand-in that counts
  is the latest successful one (Assignment.latest_submissions); a later one still being copied, or one that
  failed, is shown beside it.
- A student's folder, in the zip staff download and in the zip of annotated files they return, is named
  `学号_姓名` (username, `_`, name; the username alone without a name), made safe for Windows
  (course/names.windows_name); each file's path too, part by part, kept apart where Windows ignores case.
- The zip is written while it is sent, a few MB at a time, never whole in memory; only the hand-ins that
  count are in it; every entry carries the time of its hand-in (Beijing time). Names that are not ASCII are
  stored in UTF-8 with the UTF-8 flag set (Python's zipfile does so), which Windows' own unzip, `unzip` and
  macOS read.
- A folder of a returned zip belongs to the student whose folder name it is (any case), whose username it is,
  or whose username comes before its first `_` after it (the name part may have been edited); a folder that
  matches nobody, or a second folder for one student, stops the return with the folder's name.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from course.models import Assignment, Grade, Submission
from course.names import distinct_name, windows_name, windows_paths

CHUNK = 1024 * 1024
ZIP_LEVEL = 1  # deflate's fastest: notebooks shrink by most of what they can, the 2-core server stays free

STATUS_FILTERS = ("in", "missing", "late", "auto", "graded", "ungraded")


def display_name(user) -> str:
    return user.get_full_name().strip()


def student_folder(user) -> str:
    """The folder of `user` in a zip: `学号_姓名`, safe on Windows."""
    name = display_name(user)
    return windows_name(f"{user.username}_{name}" if name else user.username)


@dataclass
class Row:
    student: object
    name: str
    groups: list[str] = field(default_factory=list)
    counting: Submission | None = None  # the hand-in that counts
    attempt: Submission | None = None  # a later hand-in, still being copied or failed
    grade: Grade | None = None
    listed: bool = True  # among the students the assignment is for now
    form: object = None  # the score form, set by the view

    @property
    def notebooks(self) -> list[str]:
        if self.counting is None:
            return []
        return [f["path"] for f in self.counting.files if f["path"].lower().endswith(".ipynb")]

    @property
    def folder(self) -> str:
        return student_folder(self.student)


SORTS = {
    "username": lambda row: row.student.username,
    "name": lambda row: row.name or None,
    "time": lambda row: row.counting.requested_at if row.counting else None,
    "late": lambda row: row.counting.late if row.counting else None,
    "auto": lambda row: row.counting.auto_collected if row.counting else None,
    "files": lambda row: row.counting.file_count if row.counting else None,
    "size": lambda row: row.counting.size if row.counting else None,
    "score": lambda row: row.grade.score if row.grade else None,
}


def _keep(row: Row, status: str) -> bool:
    scored = row.grade is not None and (row.grade.score is not None or bool(row.grade.comment))
    return {
        "in": row.counting is not None,
        "missing": row.counting is None,
        "late": bool(row.counting and row.counting.late),
        "auto": bool(row.counting and row.counting.auto_collected),
        "graded": scored,
        "ungraded": not scored,
    }.get(status, True)


def students_of(assignment: Assignment, listed=None):
    """The table's students: those the assignment is for now, and anyone else with a hand-in that counts."""
    User = get_user_model()
    listed = assignment.students().values("pk") if listed is None else listed
    done = assignment.submissions.filter(status=Submission.Status.DONE).values("student_id")
    return User.objects.filter(Q(pk__in=listed) | Q(pk__in=done))


def rows(assignment: Assignment, group=None, status: str = "", search: str = "", order: str = "username") -> list[Row]:
    """The table's rows (module rules), filtered by group, status (STATUS_FILTERS) and a search in 学号 and 姓名,
    sorted by `order` (a SORTS key, `-` first for descending; rows without a value last either way). A fixed
    number of queries, whatever the number of students."""
    listed = set(assignment.students().values_list("pk", flat=True))
    students = students_of(assignment, listed).prefetch_related("groups").order_by("username")
    if group is not None:
        students = students.filter(groups=group)
    if search := search.strip():
        students = students.filter(
            Q(username__icontains=search) | Q(first_name__icontains=search) | Q(last_name__icontains=search)
        )
    counting: dict[int, Submission] = {}
    attempts: dict[int, Submission] = {}
    for submission in assignment.submissions.order_by("requested_at", "pk"):
        if submission.status == Submission.Status.DONE:
            counting[submission.student_id] = submission
            attempts.pop(submission.student_id, None)
        else:
            attempts[submission.student_id] = submission
    grades = {grade.student_id: grade for grade in assignment.grades.all()}
    own_groups = {g.pk for g in assignment.groups.all()}
    result = []
    for student in students:
        row = Row(
            student=student,
            name=display_name(student),
            groups=[g.name for g in student.groups.all() if g.pk in own_groups],
            counting=counting.get(student.pk),
            attempt=attempts.get(student.pk),
            grade=grades.get(student.pk),
            listed=student.pk in listed,
        )
        if _keep(row, status):
            result.append(row)
    key = SORTS.get(order.lstrip("-"), SORTS["username"])
    known = [row for row in result if key(row) is not None]
    unknown = [row for row in result if key(row) is None]
    return sorted(known, key=key, reverse=order.startswith("-")) + unknown


# --- the zip of hand-ins ----------------------------------------------------------------------------------------
class _Pipe(io.RawIOBase):
    """Where zipfile writes; what it wrote is taken away after each piece (zipfile needs no seeking here: it
    then writes each entry's sizes after its data)."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self):
        return True

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _entries(submissions: list[Submission]):
    """(path in the zip, file on the server or None for a folder, time) for each hand-in's files."""
    taken: set[str] = set()
    for submission in submissions:
        folder = distinct_name(student_folder(submission.student), taken)
        when = timezone.localtime(submission.requested_at).timetuple()[:6]
        root = submission.path
        names = [f["path"] for f in submission.files]
        if not names:
            yield f"{folder}/", None, when
            continue
        for original, safe in windows_paths(names).items():
            source = root / original
            if not source.resolve().is_relative_to(root.resolve()):
                continue  # never from anywhere but the hand-in's own folder
            yield f"{folder}/{safe}", source, when


def stream_zip(submissions: list[Submission]):
    """The zip of `submissions` (module rules), a piece at a time."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        for arcname, source, when in _entries(submissions):
            info = zipfile.ZipInfo(arcname, date_time=max(when, (1980, 1, 1, 0, 0, 0)))
            if source is None:
                info.external_attr = 0o40755 << 16 | 0x10
                archive.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            try:
                handle = open(source, "rb")
            except OSError:
                continue  # gone from the server: the zip holds the rest
            with handle:
                info.file_size = Path(source).stat().st_size
                with archive.open(info, "w", force_zip64=info.file_size > 2**31) as entry:
                    while chunk := handle.read(CHUNK):
                        entry.write(chunk)
                        yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def counting_submissions(assignment: Assignment, group=None) -> list[Submission]:
    """The hand-ins that count, of every student (of `group`), by username."""
    latest = assignment.latest_submissions()
    submissions = Submission.objects.filter(pk__in=[s.pk for s in latest.values()]).select_related("student")
    if group is not None:
        submissions = submissions.filter(student__groups=group)
    return sorted(submissions, key=lambda s: s.student.username)


def zip_name(assignment: Assignment, group=None) -> str:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    parts = [assignment.folder, group.name if group is not None else "", stamp]
    return windows_name("_".join(p for p in parts if p)) + ".zip"


# --- returned files --------------------------------------------------------------------------------------------
def match_folders(tops: dict[str, set[str]], students) -> tuple[str, dict[str, object]]:
    """Which student each folder of a returned zip belongs to (bundles.zip_folders' answer; module rules).
    Returns (the one folder everything is inside, or "", {folder: student}); raises ValidationError naming
    the folders that match nobody or the student who has two."""
    students = list(students)
    by_folder = {student_folder(s).casefold(): s for s in students}
    by_username = {s.username.casefold(): s for s in students}

    def owner(folder: str):
        key = folder.casefold()
        if key in by_folder or key in by_username:
            return by_folder.get(key) or by_username[key]
        prefixes = [s for username, s in by_username.items() if key.startswith(username + "_")]
        return max(prefixes, key=lambda s: len(s.username)) if prefixes else None

    inside = ""
    folders = [name for name in tops if name]
    if len(folders) == 1 and "" not in tops and owner(folders[0]) is None and tops[folders[0]]:
        inside = folders[0]  # one folder around the students' folders (the whole download zipped again)
        folders = sorted(tops[inside])
    elif "" in tops:
        raise ValidationError(
            _("%(name)s is not inside a student's folder.") % {"name": sorted(tops[""])[0]}, code="outside"
        )
    matched, unknown, seen = {}, [], {}
    for folder in sorted(folders):
        student = owner(folder)
        if student is None:
            unknown.append(folder)
            continue
        if student.pk in seen:
            raise ValidationError(
                _("%(first)s and %(second)s are both folders of %(username)s.")
                % {"first": seen[student.pk], "second": folder, "username": student.username},
                code="twice",
            )
        seen[student.pk] = folder
        matched[folder] = student
    if unknown:
        raise ValidationError(
            _("These folders belong to no student of this assignment: %(folders)s. Name each folder 学号_姓名.")
            % {"folders": ", ".join(unknown[:10]) + ("…" if len(unknown) > 10 else "")},
            code="unknown",
        )
    if not matched:
        raise ValidationError(_("There are no students' folders in the zip."), code="empty")
    return inside, matched


def when_returned(grades) -> dt.datetime | None:
    times = [g.returned_at for g in grades if g.returned_at]
    return max(times) if times else None
