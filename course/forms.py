"""The hand-out forms of the admin: the hand-out's fields plus its files, which become a new version.

Rules:
- Files come from an upload (one notebook or any file, several files, or one zip) or from a folder on the
  server under DATA_ROOT/course/ (course/bundles.py checks both; a refusal shows next to the field). A new
  hand-out needs files; a change may bring new ones (a new version) or none (only the fields change).
- The files are stored only once every other field is valid, so a form with a mistake leaves nothing behind.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
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
