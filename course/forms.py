"""The hand-out forms of the admin: the hand-out's fields plus its files, which become a new version.

Rules:
- Files come from an upload (one notebook or any file, several files, or one zip) or from a folder on the
  server under DATA_ROOT/course/ (course/bundles.py checks both; a refusal shows next to the field). A new
  hand-out needs files; a change may bring new ones (a new version) or none (only the fields change).
- The files are stored only once every other field is valid, so a form with a mistake leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from course import bundles
from course.models import Assignment, Material


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


def server_folders() -> list[tuple[str, str]]:
    root = bundles.source_root()
    try:
        names = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        )
    except OSError:
        names = []
    return [("", "---------")] + [(name, name) for name in names]


class HandoutForm(forms.ModelForm):
    files = MultipleFileField(
        label=_("files"),
        required=False,
        help_text=_("A notebook or any file, several files, or one zip (unpacked; a single top folder is dropped)."),
    )
    server_folder = forms.ChoiceField(
        label=_("or a folder on the server"),
        required=False,
        help_text=_("A folder under DATA_ROOT/course/ on the server."),
    )
    note = forms.CharField(label=_("note on this version"), max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["server_folder"].choices = server_folders()
        self.bundle = None

    def clean(self):
        cleaned = super().clean()
        files, folder = cleaned.get("files") or [], cleaned.get("server_folder")
        if files and folder:
            self.add_error("server_folder", _("Upload files or pick a folder, not both."))
        elif not files and not folder and not self.instance.pk:
            self.add_error("files", _("Upload the files to hand out, or pick a folder on the server."))
        if self.errors or not (files or folder):
            return cleaned
        try:
            self.bundle = bundles.from_uploads(files) if files else bundles.from_folder(folder)
        except ValidationError as error:
            self.add_error("files" if files else "server_folder", error)
        return cleaned


class MaterialForm(HandoutForm):
    class Meta:
        model = Material
        fields = ("title", "description", "folder", "groups", "for_everyone", "release_at")


class AssignmentForm(HandoutForm):
    class Meta:
        model = Assignment
        fields = (
            "title", "description", "folder", "groups", "for_everyone", "release_at", "due_at", "late_policy",
            "late_until", "size_limit_mb",
        )  # fmt: skip
        labels = {"release_at": _("opens at")}


# --- staff's forms of an assignment: scores from a CSV, returned files ----------------------------------------
MAX_SCORES_BYTES = 1024 * 1024


class ScoresUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Scores file"),
        help_text=_(
            "CSV with a header row: 学号, 分数, 评语 (姓名 may be there too). UTF-8 or GB18030 (Excel's CSV) both work."
        ),
    )

    def clean_file(self):
        from accounts.roster import RosterError, decode
        from course.grades import parse_scores

        upload = self.cleaned_data["file"]
        if upload.size > MAX_SCORES_BYTES:
            raise ValidationError(_("The file is larger than 1 MB; is it really a list of scores?"))
        try:
            self.text = decode(upload.read())
            self.rows = parse_scores(self.text)
        except RosterError as exc:
            raise ValidationError(str(exc)) from None
        return upload


class ScoresConfirmForm(forms.Form):
    """The previewed file travels back as text, so what is saved is exactly what staff saw."""

    text = forms.CharField(widget=forms.HiddenInput, strip=False)

    def clean_text(self):
        from accounts.roster import RosterError
        from course.grades import parse_scores

        try:
            self.rows = parse_scores(self.cleaned_data["text"])
        except RosterError as exc:
            raise ValidationError(str(exc)) from None
        return self.cleaned_data["text"]


class ReturnForm(forms.Form):
    """Return an assignment: scores and comments become visible; files from a zip go into each student's
    `feedback/` folder. The zip's folders are matched to students before anything is stored."""

    file = forms.FileField(
        label=_("Annotated files (zip, optional)"),
        required=False,
        help_text=_(
            "One folder per student, named as in the zip of hand-ins (学号_姓名); each folder's files go into "
            "that student's feedback folder."
        ),
    )

    def __init__(self, *args, assignment=None, students=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.assignment = assignment
        self.students = students
        self.files_by_student: dict = {}

    def clean_file(self):
        from course.handins import match_folders

        upload = self.cleaned_data.get("file")
        if not upload:
            return upload
        if not upload.name.lower().endswith(".zip"):
            raise ValidationError(_("Upload a zip file."))
        tops = bundles.zip_folders(upload)
        upload.seek(0)
        inside, matched = match_folders(tops, self.students)
        self.matched, self.inside = matched, inside
        return upload

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        graded = self.assignment.grades.exclude(score__isnull=True, comment="").exists()
        if not self.errors and not upload and not graded:
            raise ValidationError(_("Nothing to return yet: enter scores or comments, or upload annotated files."))
        if self.errors or not upload:
            return cleaned
        try:
            stored = bundles.from_zip_folders(upload, upload.name, inside=self.inside)
        except ValidationError as error:
            self.add_error("file", error)
            return cleaned
        self.files_by_student = {self.matched[folder]: bundle for folder, bundle in stored.items()}
        return cleaned


class WarmUpForm(forms.Form):
    """When to warm up a group's servers: now (empty), or at a time, in the portal's time zone (Beijing)."""

    run_at = forms.SplitDateTimeField(
        label=_("at"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=_("Empty: now. A time, e.g. 08:00 on the day of the class (Beijing time)."),
    )

    def clean_run_at(self):
        run_at = self.cleaned_data.get("run_at")
        if run_at is not None and run_at < timezone.now() - dt.timedelta(minutes=1):
            raise ValidationError(_("This time has passed; leave it empty to warm up now."))
        return run_at
