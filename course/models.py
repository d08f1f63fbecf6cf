"""A course run from the admin: material and assignments handed out into students' homes, hand-ins collected
at the student's request and at the due time, feedback and grades returned.

Models:
- Handout: files that land in every student's home under one folder: course material (Material, 课程资料, in
  `course/<folder>/`) or an assignment (Assignment, 作业, in `assignments/<folder>/`, with its due time and
  late policy). Its files are numbered Versions, each an immutable Bundle of stored files.
- Delivery: per student and home folder, what the worker last wrote there: the memory of the merge rules
  (userspace/homefiles.py) and what the student's page shows (which files arrived as `<name>.new.<ext>`).
- Submission: one hand-in (提交), a copy of the student's assignment folder taken by the worker, never by the
  student's server; Grade: a student's score, comment and returned files for one assignment.
- Job and JobItem: the worker's work, one item per student with its result; Worker: the workers' heartbeats.

Rules:
- A handout reaches the active members of its groups (every active account that is not staff with "for
  everyone"), from its hand-out time on; students who join a group later get it then (course/signals.py).
- A handout's folder is fixed once handed out (students' copies live there); the title can change.
- Versions and Bundles are never changed or deleted while anything points to them: a student's home is
  always compared with exactly what was handed out.
- Hand-ins: the time of a hand-in is the server's time of the request (or the due time, for one the system
  collected on its own), never anything the student's server says. The latest successful hand-in counts.
  After the due time an assignment takes no hand-ins (closed), or takes them until its hard deadline,
  flagged late. At the due time the worker collects every student who has not handed in before it
  ("auto-collected"); a student who handed in before the due time keeps that hand-in and is not collected
  again.
- Scores and comments are shown to the student once staff return them (`Grade.returned_at`).
- Times are stored in UTC and shown in Beijing time (TIME_ZONE).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from course import names


def default_handin_limit_mb() -> int:
    return settings.COURSE.handin_limit_mb


class Bundle(models.Model):
    """Files as staff handed them in: stored once under COURSE_ROOT/bundles/<key>/, never changed."""

    key = models.CharField(_("key"), max_length=32, unique=True, default=names.new_key, editable=False)
    source = models.CharField(_("source"), max_length=300, blank=True, help_text=_("What the files came from."))
    # {relative path: {"sha256": hex, "size": bytes}}
    files = models.JSONField(_("files"), default=dict)
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    file_count = models.PositiveIntegerField(_("files"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("stored files")
        verbose_name_plural = _("stored files")

    def __str__(self):
        return self.source or self.key

    @property
    def path(self) -> Path:
        return settings.COURSE.bundles_dir / self.key


class HandoutQuerySet(models.QuerySet):
    def released(self, now=None):
        return self.filter(release_at__lte=now or timezone.now())

    def for_student(self, user):
        """The handouts meant for `user` (released or not)."""
        if not user.is_active:
            return self.none()
        everyone = Q(for_everyone=True) if not user.is_staff else Q(pk__in=[])
        return self.filter(everyone | Q(groups__in=user.groups.all())).distinct()


class Handout(models.Model):
    """Files handed out into one folder of every student's home."""

    class Kind(models.TextChoices):
        MATERIAL = "material", _("course material")
        ASSIGNMENT = "assignment", _("assignment")

    HOME_FOLDERS = {Kind.MATERIAL: "course", Kind.ASSIGNMENT: "assignments"}

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, editable=False)
    title = models.CharField(_("title"), max_length=100)
    description = models.TextField(_("note for students"), blank=True, help_text=_("Shown on the students' page."))
    folder = models.CharField(
        _("folder"),
        max_length=100,
        blank=True,
        validators=[names.validate_folder_name],
        help_text=_("The folder's name in students' homes. Empty: the title. It cannot change once handed out."),
    )
    groups = models.ManyToManyField(Group, verbose_name=_("groups"), blank=True, related_name="handouts")
    for_everyone = models.BooleanField(
        _("for everyone"), default=False, help_text=_("Every student, whatever their groups (staff excepted).")
    )
    release_at = models.DateTimeField(
        _("hand out at"),
        default=timezone.now,
        help_text=_("Students get the files (and see it on their page) from this time on. Beijing time."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    objects = HandoutQuerySet.as_manager()

    class Meta:
        verbose_name = _("hand-out")
        verbose_name_plural = _("hand-outs")
        ordering = ["-release_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["kind", "folder"], name="course_handout_unique_folder")]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        if not self.folder:
            self.folder = names.folder_name(self.title)
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        if not self.folder:
            self.folder = names.folder_name(self.title)
        if self.pk and self.handed_out:
            before = Handout.objects.filter(pk=self.pk).values_list("folder", flat=True).first()
            if before and before != self.folder:
                raise ValidationError(
                    {"folder": _("Already handed out into %(folder)s; students' files are there.") % {"folder": before}}
                )
        clash = Handout.objects.filter(kind=self.kind, folder=self.folder).exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError({"folder": _("Another hand-out already uses this folder.")})

    @property
    def home_path(self) -> str:
        """The folder in a student's home, relative to the home: `course/<folder>` or `assignments/<folder>`."""
        return f"{self.HOME_FOLDERS[self.kind]}/{self.folder}"

    @property
    def is_released(self) -> bool:
        return self.release_at <= timezone.now()

    @property
    def handed_out(self) -> bool:
        return self.jobs.filter(started_at__isnull=False).exists()

    @property
    def current_version(self) -> Version | None:
        return self.versions.order_by("-number").first()

    def students(self):
        """The accounts this hand-out is for, now: active members of its groups, or every active student."""
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.filter(is_active=True)
        if self.for_everyone:
            return users.filter(Q(is_staff=False) | Q(groups__in=self.groups.all())).distinct()
        return users.filter(groups__in=self.groups.all()).distinct()

    def is_for(self, user) -> bool:
        return Handout.objects.for_student(user).filter(pk=self.pk).exists()


class MaterialManager(models.Manager.from_queryset(HandoutQuerySet)):
    def get_queryset(self):
        return super().get_queryset().filter(kind=Handout.Kind.MATERIAL)


class Material(Handout):
    """Course material (课程资料): lands in `course/<folder>/`."""

    objects = MaterialManager()

    class Meta:
        proxy = True
        verbose_name = _("course material")
        verbose_name_plural = _("course material")

    def save(self, *args, **kwargs):
        self.kind = Handout.Kind.MATERIAL
        super().save(*args, **kwargs)


class Assignment(Handout):
    """An assignment (作业): handed out into `assignments/<folder>/`, handed in from there."""

    class LatePolicy(models.TextChoices):
        CLOSED = "closed", _("No hand-ins after the due time")
        ACCEPT = "accept", _("Accept until the hard deadline, flagged late")

    handout = models.OneToOneField(Handout, on_delete=models.CASCADE, parent_link=True, primary_key=True)
    due_at = models.DateTimeField(_("due at"), help_text=_("Beijing time. Every folder is collected then."))
    late_policy = models.CharField(
        _("late hand-ins"), max_length=10, choices=LatePolicy.choices, default=LatePolicy.CLOSED
    )
    late_until = models.DateTimeField(
        _("hard deadline"), null=True, blank=True, help_text=_("Late hand-ins are taken until then. Beijing time.")
    )
    size_limit_mb = models.PositiveIntegerField(
        _("size limit (MB)"), default=default_handin_limit_mb, help_text=_("The largest hand-in, in MB.")
    )

    objects = HandoutQuerySet.as_manager()

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        ordering = ["-due_at", "-pk"]

    def save(self, *args, **kwargs):
        self.kind = Handout.Kind.ASSIGNMENT
        super().save(*args, **kwargs)

    def clean(self):
        self.kind = Handout.Kind.ASSIGNMENT
        super().clean()
        errors = {}
        if self.due_at and self.release_at and self.due_at <= self.release_at:
            errors["due_at"] = _("The due time must be after the hand-out time.")
        if self.late_policy == self.LatePolicy.ACCEPT:
            if not self.late_until:
                errors["late_until"] = _("Give the hard deadline until which late hand-ins are taken.")
            elif self.due_at and self.late_until <= self.due_at:
                errors["late_until"] = _("The hard deadline must be after the due time.")
        if errors:
            raise ValidationError(errors)

    @property
    def size_limit(self) -> int:
        return self.size_limit_mb * 1024**2

    @property
    def closes_at(self):
        """The last moment a student can hand in."""
        return self.late_until if self.late_policy == self.LatePolicy.ACCEPT and self.late_until else self.due_at

    def handin_refusal(self, now=None) -> str:
        """Why a hand-in asked for at `now` is refused ("" when it is taken)."""
        now = now or timezone.now()
        if now < self.release_at:
            return str(_("This assignment is not open yet."))
        if now > self.closes_at:
            return str(_("This assignment is closed: hand-ins were taken until %(time)s.")) % {
                "time": timezone.localtime(self.closes_at).strftime("%Y-%m-%d %H:%M")
            }
        return ""

    def latest_submissions(self) -> dict[int, Submission]:
        """Student id → the hand-in that counts (the latest successful one)."""
        latest = {}
        for submission in self.submissions.filter(status=Submission.Status.DONE).order_by("requested_at", "pk"):
            latest[submission.student_id] = submission
        return latest


class Version(models.Model):
    """One set of files of a hand-out; a new version is handed out by the merge rules."""

    handout = models.ForeignKey(Handout, verbose_name=_("hand-out"), on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    bundle = models.ForeignKey(Bundle, verbose_name=_("files"), on_delete=models.PROTECT, related_name="versions")
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("version")
        verbose_name_plural = _("versions")
        ordering = ["handout", "-number"]
        constraints = [models.UniqueConstraint(fields=["handout", "number"], name="course_version_unique_number")]

    def __str__(self):
        return f"{self.handout} v{self.number}"


class Delivery(models.Model):
    """What the worker last wrote into one folder of one student's home (the merge rules' memory)."""

    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("student"), on_delete=models.CASCADE, related_name="course_deliveries"
    )
    path = models.CharField(_("folder in the home"), max_length=300)
    handout = models.ForeignKey(
        Handout, verbose_name=_("hand-out"), null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    version = models.ForeignKey(
        Version, verbose_name=_("version"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # {relative path: sha256 of what the worker last wrote under that name}
    files = models.JSONField(_("files written"), default=dict)
    # [{"file": "week2.ipynb", "new": "week2.new.ipynb"}]: the student had changed the file, so the new version
    # was written beside it (from the latest delivery).
    beside = models.JSONField(_("written beside the student's file"), default=list, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), default=timezone.now)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [models.UniqueConstraint(fields=["student", "path"], name="course_delivery_unique_path")]

    def __str__(self):
        return f"{self.student} {self.path}"


class Submission(models.Model):
    """One hand-in: the worker's copy of a student's assignment folder."""

    class Status(models.TextChoices):
        PENDING = "pending", _("being collected")
        DONE = "done", _("handed in")
        FAILED = "failed", _("failed")

    assignment = models.ForeignKey(
        Assignment, verbose_name=_("assignment"), on_delete=models.CASCADE, related_name="submissions"
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("student"), on_delete=models.CASCADE, related_name="submissions"
    )
    requested_at = models.DateTimeField(_("handed in at"), default=timezone.now)
    auto_collected = models.BooleanField(_("auto-collected"), default=False)
    late = models.BooleanField(_("late"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(_("message"), blank=True)
    collected_at = models.DateTimeField(_("copied at"), null=True, blank=True)
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    file_count = models.PositiveIntegerField(_("files"), default=0)
    # [{"path": "hw1.ipynb", "size": 1234, "sha256": "..."}]
    files = models.JSONField(_("files"), default=list, blank=True)
    # Relative to COURSE_ROOT/handins/; empty until collected.
    folder = models.CharField(_("stored in"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("hand-in")
        verbose_name_plural = _("hand-ins")
        ordering = ["-requested_at", "-pk"]
        indexes = [models.Index(fields=["assignment", "student", "status"])]

    def __str__(self):
        return f"{self.assignment} {self.student}"

    @property
    def path(self) -> Path | None:
        """The folder holding the copied files (read-only for everyone but the worker)."""
        return settings.COURSE.handins_dir / self.folder if self.folder else None

    @property
    def shown_message(self) -> str:
        """`message` in the reader's language (course/messages.py)."""
        from course.messages import show

        return show(self.message)


class Grade(models.Model):
    """A student's score, comment and returned files for one assignment; shown to them once returned."""

    assignment = models.ForeignKey(
        Assignment, verbose_name=_("assignment"), on_delete=models.CASCADE, related_name="grades"
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("student"), on_delete=models.CASCADE, related_name="grades"
    )
    score = models.DecimalField(_("score"), max_digits=6, decimal_places=2, null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    # Names of the files returned into assignments/<folder>/feedback/ (relative to it).
    feedback = models.JSONField(_("returned files"), default=list, blank=True)
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("updated by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        verbose_name = _("grade")
        verbose_name_plural = _("grades")
        constraints = [models.UniqueConstraint(fields=["assignment", "student"], name="course_grade_unique_student")]

    def __str__(self):
        return f"{self.assignment} {self.student}"

    @property
    def is_returned(self) -> bool:
        return self.returned_at is not None


class Job(models.Model):
    """Work for the worker: hand out a version, collect hand-ins, return feedback, warm up a group's servers;
    one item per student."""

    class Kind(models.TextChoices):
        HAND_OUT = "hand_out", _("hand out")
        COLLECT = "collect", _("hand-in")
        AUTO_COLLECT = "auto_collect", _("collect at the due time")
        RETURN = "return", _("return feedback")
        WARM_UP = "warm_up", _("warm up servers")

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting to run")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        CANCELLED = "cancelled", _("cancelled")

    kind = models.CharField(_("kind"), max_length=14, choices=Kind.choices)
    handout = models.ForeignKey(
        Handout, verbose_name=_("hand-out"), null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    version = models.ForeignKey(
        Version, verbose_name=_("version"), null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    # A warm-up's class (course/warmup.py); its members are listed when the job runs.
    group = models.ForeignKey(
        "auth.Group", verbose_name=_("group"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    run_at = models.DateTimeField(_("runs at"), default=timezone.now)
    # Higher first: a student waiting for a hand-in goes before a class's hand-out.
    priority = models.SmallIntegerField(_("priority"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(_("message"), blank=True)
    # Whether its items were made: a hand-out or collection at a set time finds its students when it runs.
    expanded = models.BooleanField(_("students listed"), default=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "run_at"])]
        # Teachers hold it (accounts/roles.py gives them course.*), TAs do not: a warm-up spends the machine's
        # memory for everyone, a decision like handing out, which TAs only watch (course/warmup.py).
        permissions = [("warm_up", _("Can warm up a group's servers"))]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.handout or self.group or ''}"

    @property
    def shown_message(self) -> str:
        """`message` in the reader's language (course/messages.py)."""
        from course.messages import show

        return show(self.message)

    def progress(self) -> dict[str, int]:
        """How many items are in each status, every status present."""
        counts = dict.fromkeys(JobItem.Status.values, 0)
        for row in self.items.values("status").annotate(n=models.Count("pk")):
            counts[row["status"]] = row["n"]
        return counts


class JobItem(models.Model):
    """One student's part of a job, with its result."""

    class Status(models.TextChoices):
        PENDING = "pending", _("to do")
        WAITING = "waiting", _("waiting for the home")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        SKIPPED = "skipped", _("skipped")
        FAILED = "failed", _("failed")

    OPEN = (Status.PENDING, Status.WAITING, Status.RUNNING)

    job = models.ForeignKey(Job, verbose_name=_("job"), on_delete=models.CASCADE, related_name="items")
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("student"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    username = models.CharField(_("username"), max_length=150)  # kept when the account is deleted
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(_("message"), blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)
    # A return's files for this student; a hand-in's record.
    bundle = models.ForeignKey(
        Bundle, verbose_name=_("files"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submission = models.ForeignKey(
        Submission, verbose_name=_("hand-in"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    worker = models.CharField(_("worker"), max_length=100, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("student's result")
        verbose_name_plural = _("students' results")
        ordering = ["job", "pk"]
        indexes = [models.Index(fields=["status"])]
        constraints = [models.UniqueConstraint(fields=["job", "student"], name="course_jobitem_unique_student")]

    def __str__(self):
        return self.username

    @property
    def shown_message(self) -> str:
        """`message` in the reader's language (course/messages.py)."""
        from course.messages import show

        return show(self.message)


class Worker(models.Model):
    """A running `course_worker`; it writes `seen_at` every few seconds."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    seen_at = models.DateTimeField(_("last seen"), default=timezone.now)

    ALIVE_SECONDS = 30

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")

    def __str__(self):
        return self.name

    @classmethod
    def alive(cls, now=None):
        now = now or timezone.now()
        return cls.objects.filter(seen_at__gte=now - dt.timedelta(seconds=cls.ALIVE_SECONDS))
