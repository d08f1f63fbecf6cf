"""Scores and comments: entered in the assignment's table, imported from a CSV, exported per group.

Rules:
- A score is a number with at most two decimals, from -9999.99 to 9999.99; full-width digits from a Chinese
  input method (８５．５) are read as ordinary ones. An empty score or comment changes nothing, so a CSV with
  only some columns or rows filled in never erases what is there (clear a score in the table).
- What staff save, in the table or from a CSV, is saved whole or not at all: one error anywhere (a score that
  is not a number, a 学号 no student of the assignment has, a 学号 twice) and nothing is saved, with the
  reason next to the field or on the row.
- A CSV of scores has a header row naming its columns: 学号 (or 用户名, username), 分数 (成绩, 得分, score), 评语
  (评论, comment); 姓名 and others are ignored. Encodings and delimiters as a roster (accounts.roster.decode:
  UTF-8 with or without BOM, UTF-16, GB18030; comma, tab or semicolon).
- A saved score or comment of a returned assignment is shown to the student at once.
- The grade export of a group: one row per student of the group (staff left out) by 学号, the columns 学号,
  姓名, then one per assignment of the group (for the group or for everyone) by due time, holding the score.
  In GB18030 (Excel on Chinese Windows opens it as it is) or UTF-8 with a BOM (Excel elsewhere, and any other
  program). A cell that a spreadsheet would take for a formula (=, +, -, @ first, and it is not a number) gets
  a `'` in front: a student's name is theirs to choose.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.roster import RosterError
from course.models import Assignment, Grade

MAX_SCORE = Decimal("9999.99")
MAX_ROWS = 5000
ENCODINGS = {"gb18030": "GB18030", "utf-8-sig": "UTF-8 (BOM)"}
HEADERS = {
    "username": {"学号", "用户名", "账号", "帐号", "username", "user", "login", "student"},
    "score": {"分数", "成绩", "得分", "score", "grade", "points"},
    "comment": {"评语", "评论", "批语", "comment", "comments", "feedback"},
}


def read_score(value) -> Decimal | None:
    """A score typed or imported (module rules); None when empty; ValueError with the reason otherwise."""
    text = unicodedata.normalize("NFKC", str(value or "")).strip().replace(" ", "")
    if not text:
        return None
    try:
        score = Decimal(text)
    except InvalidOperation:
        raise ValueError(_("%(value)s is not a number.") % {"value": text}) from None
    if not score.is_finite() or abs(score) > MAX_SCORE:
        raise ValueError(_("A score is between -9999.99 and 9999.99."))
    if score != score.quantize(Decimal("0.01")):
        raise ValueError(_("A score has at most two decimals."))
    return score.quantize(Decimal("0.01"))


class ScoreField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        try:
            return read_score(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class GradeRowForm(forms.Form):
    """One student's row of the table; prefix: the student's id."""

    score = ScoreField(label=gettext_lazy("score"), required=False, max_length=20)
    comment = forms.CharField(label=gettext_lazy("comment"), required=False, widget=forms.Textarea(attrs={"rows": 1}))

    def __init__(self, *args, student=None, grade=None, **kwargs):
        initial = {"score": _score_text(grade.score) if grade else "", "comment": grade.comment if grade else ""}
        super().__init__(*args, initial=initial, **kwargs)
        self.student, self.grade = student, grade
        label = student.username if student else ""
        self.fields["score"].widget.attrs.update({"aria-label": _("score of %(name)s") % {"name": label}, "size": 6})
        self.fields["comment"].widget.attrs.update({"aria-label": _("comment for %(name)s") % {"name": label}})

    def changes(self) -> dict:
        """What this row changes in the grade (after is_valid)."""
        score, comment = self.cleaned_data["score"], self.cleaned_data["comment"].strip()
        before_score = self.grade.score if self.grade else None
        before_comment = self.grade.comment if self.grade else ""
        changes = {}
        if score != before_score:
            changes["score"] = score
        if comment != before_comment:
            changes["comment"] = comment
        return changes


def _score_text(score) -> str:
    if score is None:
        return ""
    text = f"{score:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def row_forms(rows, data=None) -> list[GradeRowForm]:
    """A form per row, bound to `data` only where `data` has that row (a student who joined the table after it
    was loaded is left alone, not emptied)."""
    forms_ = []
    for row in rows:
        prefix = str(row.student.pk)
        bound = data if data is not None and f"{prefix}-score" in data else None
        row.form = GradeRowForm(bound, prefix=prefix, student=row.student, grade=row.grade)
        forms_.append(row.form)
    return forms_


@transaction.atomic
def save_forms(assignment: Assignment, forms_: list[GradeRowForm], by) -> int:
    """Save the rows that changed; returns how many. Call only when every form is valid."""
    count = 0
    for form in forms_:
        changes = form.changes()
        if changes:
            _save(assignment, form.student, changes, by)
            count += 1
    return count


def _save(assignment, student, changes: dict, by) -> Grade:
    grade, _created = Grade.objects.select_for_update().get_or_create(assignment=assignment, student=student)
    for key, value in changes.items():
        setattr(grade, key, value)
    grade.updated_by = by
    grade.save()
    return grade


# --- importing a CSV of scores -----------------------------------------------------------------------------------
CHANGE, UNCHANGED, ERROR = "change", "unchanged", "error"


@dataclass
class ScoreRow:
    line: int
    username: str
    score_text: str = ""
    comment: str = ""
    name: str = ""
    status: str = ""
    message: str = ""
    student: object = None
    score: Decimal | None = None


@dataclass
class ScoreReport:
    rows: list[ScoreRow]

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def ok(self) -> bool:
        return not self.count(ERROR)

    @property
    def changed(self) -> bool:
        return self.ok and bool(self.count(CHANGE))


def parse_scores(text: str) -> list[ScoreRow]:
    """The rows of a scores CSV (module rules); RosterError when the file as a whole cannot be read."""
    text = text.lstrip("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise RosterError(_("The file is empty."))
    delimiter = max(("\t", ",", ";"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = [" ".join(cell.split()).casefold() for cell in cells]
            break
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        for key, names in HEADERS.items():
            if title in names and key not in columns:
                columns[key] = index
    if "username" not in columns or not ({"score", "comment"} & columns.keys()):
        raise RosterError(
            _("The first row must name the columns: username (学号), score (分数), comment (评语) (found: %(found)s).")
            % {"found": ", ".join(header)}
        )
    name_column = next((i for i, title in enumerate(header) if title in {"姓名", "name", "名字"}), None)

    def cell(cells, index):
        return cells[index].strip() if index is not None and index < len(cells) else ""

    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        rows.append(
            ScoreRow(
                line=reader.line_num,
                username=unicodedata.normalize("NFKC", cell(cells, columns["username"])).strip().lower(),
                score_text=cell(cells, columns.get("score")),
                comment=_uncell(cell(cells, columns.get("comment"))),
                name=cell(cells, name_column),
            )
        )
        if len(rows) > MAX_ROWS:
            raise RosterError(_("A file can have at most %(max)d rows; split it.") % {"max": MAX_ROWS})
    return rows


def check_scores(assignment: Assignment, rows: list[ScoreRow]) -> ScoreReport:
    """What importing `rows` would do, row by row; nothing is saved."""
    User = get_user_model()
    wanted = {row.username for row in rows}
    known = {user.username: user for user in User.objects.filter(username__in=wanted)}
    listed = set(assignment.students().filter(username__in=wanted).values_list("pk", flat=True))
    handed_in = set(assignment.submissions.filter(student__username__in=wanted).values_list("student_id", flat=True))
    grades = {g.student_id: g for g in assignment.grades.filter(student__username__in=wanted)}
    seen: dict[str, int] = {}
    for row in rows:
        student = known.get(row.username)
        if not row.username:
            row.status, row.message = ERROR, _("The username is empty.")
            continue
        if row.username in seen:
            row.status, row.message = ERROR, _("Same username as line %(line)d.") % {"line": seen[row.username]}
            continue
        seen[row.username] = row.line
        if student is None:
            row.status, row.message = ERROR, _("No student has this username.")
            continue
        if student.pk not in listed and student.pk not in handed_in:
            row.status, row.message = ERROR, _("Not a student of this assignment.")
            continue
        try:
            row.score = read_score(row.score_text)
        except ValueError as exc:
            row.status, row.message = ERROR, str(exc)
            continue
        row.student = student
        grade = grades.get(student.pk)
        changes = _row_changes(row, grade)
        row.status = CHANGE if changes else UNCHANGED
        row.message = ", ".join(
            str(_("score %(before)s → %(after)s") % {"before": _score_text(grade.score) if grade else "—",
                                                     "after": _score_text(changes["score"])})
            if key == "score" else str(_("new comment"))
            for key in changes
        )  # fmt: skip
    return ScoreReport(rows=rows)


def _row_changes(row: ScoreRow, grade: Grade | None) -> dict:
    changes = {}
    if row.score is not None and row.score != (grade.score if grade else None):
        changes["score"] = row.score
    if row.comment and row.comment != (grade.comment if grade else ""):
        changes["comment"] = row.comment
    return changes


def import_scores(assignment: Assignment, rows: list[ScoreRow], by) -> ScoreReport:
    """Check and save `rows` in one transaction; with any error nothing is saved (the report says why)."""
    with transaction.atomic():
        report = check_scores(assignment, rows)
        if not report.ok:
            return report
        grades = {g.student_id: g for g in assignment.grades.select_for_update()}
        for row in report.rows:
            changes = _row_changes(row, grades.get(row.student.pk))
            if changes:
                _save(assignment, row.student, changes, by)
    return report


def template_csv(rows) -> str:
    """The table as a CSV to fill in: 学号, 姓名, 分数, 评语 (UTF-8 with a BOM, which Excel reads)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["学号", "姓名", "分数", "评语"])
    for row in rows:
        grade = row.grade
        writer.writerow(
            [
                _cell(row.student.username),
                _cell(row.name),
                _score_text(grade.score) if grade else "",
                _cell(grade.comment) if grade else "",
            ]
        )
    return out.getvalue()


# --- the grade export of a group ---------------------------------------------------------------------------------
def _cell(value) -> str:
    text = str(value or "")
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            Decimal(text)
        except InvalidOperation:
            return "'" + text
    return text


def _uncell(text: str) -> str:
    """A cell as `_cell` wrote it, back (a comment exported, edited in Excel and imported again)."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@") else text


def group_assignments(group: Group):
    return Assignment.objects.filter(Q(groups=group) | Q(for_everyone=True)).distinct().order_by("due_at", "pk")


def group_students(group: Group):
    return group.user_set.filter(is_staff=False).order_by("username")


def export_csv(group: Group) -> str:
    """The grade export of `group` as text (module rules); the caller encodes it."""
    assignments = list(group_assignments(group))
    students = list(group_students(group))
    scores = {
        (g.assignment_id, g.student_id): g.score
        for g in Grade.objects.filter(assignment__in=assignments, student__in=students).only(
            "assignment_id", "student_id", "score"
        )
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["学号", "姓名", *(_cell(a.title) for a in assignments)])
    for student in students:
        writer.writerow(
            [
                _cell(student.username),
                _cell(student.get_full_name().strip()),
                *(_score_text(scores.get((a.pk, student.pk))) for a in assignments),
            ]
        )
    return out.getvalue()


def encode(text: str, encoding: str) -> bytes:
    if encoding not in ENCODINGS:
        encoding = "gb18030"
    return text.encode(encoding)
