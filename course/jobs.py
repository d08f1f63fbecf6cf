"""The course's jobs: what staff and students ask for, and what the worker does for each student.

Asking (portal side; each in one transaction, never touching a home; the worker does the rest):
- `hand_out(handout, bundle, by)`: a new version of a hand-out, handed out at its hand-out time (at once
  when that has passed) to every student it is for at that moment.
- `reschedule(handout)`: after its hand-out or due time changed: moves what has not started yet, and keeps
  an assignment's collection at its due time (`auto_collect`).
- `request_handin(assignment, student)`: 提交. The time is the server's, now; refused (HandinRefused, with
  the reason for the student) before the assignment opens, after it closes, or when it is not theirs. A
  request while one is still being collected returns that one.
- `return_feedback(assignment, by, files)`: scores and comments become visible to the students, and each
  student's files (a Bundle) are written into `assignments/<folder>/feedback/`.
- `deliver_to_member(user)`: hand-outs a student should have and has not got (joined a group later, a new
  account, reactivated); course/signals.py calls it.
- `retry(job)`: a job's failed students again.

Doing (the worker, course/worker.py): `expand(job)` lists a due job's students; `run_item(item, homes)` does
one student's part and records the result on the item (done, skipped or failed with the reason, or waiting
for a home that does not exist yet). Every step is idempotent: an item done twice leaves the home as once
(the merge rules keep what is there), so the worker may do again whatever it was doing when it was killed.
A problem of one student (a full disk, a folder too large, a deleted or deactivated account) fails or skips
that student only; an engine that does not answer (EngineAway) leaves the item to do and pauses the worker.
"""

from __future__ import annotations

import datetime as dt
import shutil

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.kinds import Kind
from audit.records import record
from course.messages import N_, note
from course.models import Assignment, Delivery, Grade, Handout, Job, JobItem, Submission, Version
from userspace.homefiles import HomeError
from userspace.homes import EngineAway

HANDIN_PRIORITY = 10  # a student waiting at the 提交 button goes first
AUTO_COLLECT_PRIORITY = 5


class HandinRefused(Exception):
    """A hand-in cannot be taken now; the message is for the student."""


# --- asking ------------------------------------------------------------------------------------------------------
@transaction.atomic
def hand_out(handout: Handout, bundle, by=None, note: str = "") -> Version:
    last = handout.versions.select_for_update().order_by("-number").first() if handout.pk else None
    version = Version.objects.create(
        handout=handout, number=(last.number + 1) if last else 1, bundle=bundle, note=note, created_by=by
    )
    Job.objects.filter(kind=Job.Kind.HAND_OUT, handout=handout, expanded=False).update(status=Job.Status.CANCELLED)
    Job.objects.create(
        kind=Job.Kind.HAND_OUT,
        handout=handout,
        version=version,
        run_at=max(timezone.now(), handout.release_at),
        created_by=by,
    )
    if isinstance(handout, Assignment):
        auto_collect(handout)
    return version


@transaction.atomic
def reschedule(handout: Handout) -> None:
    waiting = Job.objects.filter(kind=Job.Kind.HAND_OUT, handout=handout, expanded=False, status=Job.Status.PENDING)
    waiting.update(run_at=max(timezone.now(), handout.release_at))
    assignment = getattr(handout, "assignment", None) if not isinstance(handout, Assignment) else handout
    if assignment is not None:
        auto_collect(assignment)


def auto_collect(assignment: Assignment) -> Job:
    """The collection at the due time: one per due time; a collection not started yet moves with it."""
    jobs = Job.objects.filter(kind=Job.Kind.AUTO_COLLECT, handout=assignment)
    job = jobs.filter(run_at=assignment.due_at).exclude(status=Job.Status.CANCELLED).first()
    if job is None:
        jobs.filter(expanded=False, status=Job.Status.PENDING).update(status=Job.Status.CANCELLED)
        job = Job.objects.create(
            kind=Job.Kind.AUTO_COLLECT, handout=assignment, run_at=assignment.due_at, priority=AUTO_COLLECT_PRIORITY
        )
    return job


def request_handin(assignment: Assignment, student, now: dt.datetime | None = None) -> Submission:
    now = now or timezone.now()
    with transaction.atomic():
        if not assignment.is_for(student):
            raise HandinRefused(_("This assignment is not for you."))
        if refusal := assignment.handin_refusal(now):
            raise HandinRefused(refusal)
        pending = assignment.submissions.filter(student=student, status=Submission.Status.PENDING).first()
        if pending is not None:
            return pending
        submission = Submission.objects.create(
            assignment=assignment, student=student, requested_at=now, late=now > assignment.due_at
        )
        job = Job.objects.create(
            kind=Job.Kind.COLLECT,
            handout=assignment,
            run_at=now,
            priority=HANDIN_PRIORITY,
            expanded=True,
            created_by=student,
        )
        JobItem.objects.create(job=job, student=student, username=student.username, submission=submission)
    return submission


@transaction.atomic
def return_feedback(assignment: Assignment, by=None, files: dict | None = None) -> Job | None:
    """Return the assignment: every grade becomes visible, and `files` ({student: Bundle}) are written into
    each student's `assignments/<folder>/feedback/`. Returns the job writing the files (None without files)."""
    now = timezone.now()
    files = files or {}
    for student in files:
        Grade.objects.get_or_create(assignment=assignment, student=student, defaults={"updated_by": by})
    assignment.grades.filter(returned_at__isnull=True).update(returned_at=now)
    if not files:
        return None
    job = Job.objects.create(kind=Job.Kind.RETURN, handout=assignment, expanded=True, created_by=by)
    JobItem.objects.bulk_create(
        JobItem(job=job, student=student, username=student.username, bundle=bundle) for student, bundle in files.items()
    )
    return job


def deliver_to_member(user) -> list[Job]:
    """Hand out to `user` what they should have by now and have not got, one small job per hand-out."""
    if not user.is_active:
        return []
    made = []
    with transaction.atomic():
        for handout in Handout.objects.for_student(user).released():
            version = handout.current_version
            if version is None or not version.jobs.filter(kind=Job.Kind.HAND_OUT, expanded=True).exists():
                continue  # not handed out yet: its own job will find this student
            got = Delivery.objects.filter(student=user, path=handout.home_path, version__number__gte=version.number)
            queued = JobItem.objects.filter(
                student=user, job__handout=handout, job__kind=Job.Kind.HAND_OUT, status__in=JobItem.OPEN
            )
            if got.exists() or queued.exists():
                continue
            job = Job.objects.create(kind=Job.Kind.HAND_OUT, handout=handout, version=version, expanded=True)
            JobItem.objects.create(job=job, student=user, username=user.username)
            made.append(job)
    return made


@transaction.atomic
def retry(job: Job) -> int:
    count = job.items.filter(status=JobItem.Status.FAILED).update(
        status=JobItem.Status.PENDING, message="", attempts=0, finished_at=None
    )
    if count:
        Job.objects.filter(pk=job.pk).update(status=Job.Status.PENDING, finished_at=None)
        Submission.objects.filter(
            pk__in=job.items.exclude(submission=None).values("submission"), status=Submission.Status.FAILED
        ).update(status=Submission.Status.PENDING, message="")
    return count


# --- doing -------------------------------------------------------------------------------------------------------
@transaction.atomic
def expand(job: Job) -> int:
    """Make a due job's items: the students it is for at this moment. Returns how many."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.expanded:
        return job.items.count()
    if job.kind == Job.Kind.WARM_UP:
        from course import warmup

        refusal = warmup.check_when_due(job) if job.group_id else ""
        # Every member, so that a deactivated one shows as skipped; warmup.warm_item decides at the start.
        students = list(job.group.user_set.order_by("username")) if job.group_id and not refusal else []
    else:
        refusal = ""
        students = list(job.handout.students()) if job.handout else []
    JobItem.objects.bulk_create(
        [JobItem(job=job, student=student, username=student.username) for student in students],
        ignore_conflicts=True,
    )
    job.expanded, job.started_at = True, timezone.now()
    if refusal:
        job.status, job.finished_at, job.message = Job.Status.DONE, job.started_at, refusal
    elif not students and job.kind == Job.Kind.WARM_UP:
        job.status, job.finished_at = Job.Status.DONE, job.started_at
        job.message = note(N_("Nobody to do it for: the group has no members."))
    elif not students:
        job.status, job.finished_at = Job.Status.DONE, job.started_at
        job.message = note(
            N_("Nothing to do it for: the groups have no active members (students who join later get it).")
        )
    else:
        job.status = Job.Status.RUNNING
    job.save(update_fields=["expanded", "started_at", "status", "finished_at", "message"])
    if not students:
        record_finished(job)
    return len(students)


def finish_job_if_done(job_id: int) -> None:
    open_items = JobItem.objects.filter(job_id=job_id, status__in=(JobItem.Status.PENDING, JobItem.Status.RUNNING))
    now = timezone.now()
    if open_items.exists():
        Job.objects.filter(pk=job_id).exclude(status=Job.Status.CANCELLED).update(status=Job.Status.RUNNING)
    elif Job.objects.filter(pk=job_id, finished_at__isnull=True).update(status=Job.Status.DONE, finished_at=now):
        record_finished(Job.objects.select_related("handout", "group").get(pk=job_id))


def record_finished(job: Job) -> None:
    """The end of a job in the record of who did what (once: only the update that ends it calls this)."""
    record(
        Kind.COURSE_JOB_FINISHED,
        job=job.pk,
        job_kind=job.kind,
        status=job.status,
        handout=job.handout.title if job.handout_id else None,
        group=job.group.name if job.group_id else None,
        **{f"items_{status}": count for status, count in job.progress().items() if count},
    )


class _Outcome(Exception):
    """How an item ended, when not done: raised inside run_item, recorded by it."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def run_item(item: JobItem, homes) -> JobItem:
    """Do one student's part of a job and record how it ended. Raises EngineAway only (the item is then to do
    again), after putting the item back."""
    job = item.job
    try:
        student = item.student
        if student is None:
            gone = JobItem.Status.SKIPPED if job.kind == Job.Kind.WARM_UP else JobItem.Status.FAILED
            raise _Outcome(gone, note(N_("The account was deleted.")))
        if not student.is_active:
            raise _Outcome(JobItem.Status.SKIPPED, note(N_("The account is deactivated.")))
        handler = {
            Job.Kind.HAND_OUT: _hand_out_item,
            Job.Kind.COLLECT: _collect_item,
            Job.Kind.AUTO_COLLECT: _auto_collect_item,
            Job.Kind.RETURN: _return_item,
            Job.Kind.WARM_UP: _warm_up_item,
        }[job.kind]
        result, message = handler(item, student, homes)
        _record(item, JobItem.Status.DONE, message, result)
    except _Outcome as outcome:
        _record(item, outcome.status, str(outcome), item.result)
        if item.submission_id and outcome.status != JobItem.Status.WAITING:
            Submission.objects.filter(pk=item.submission_id, status=Submission.Status.PENDING).update(
                status=Submission.Status.FAILED, message=str(outcome)
            )
    except EngineAway:
        JobItem.objects.filter(pk=item.pk).update(status=JobItem.Status.PENDING, worker="", started_at=None)
        raise
    finally:
        finish_job_if_done(job.pk)
    return item


def _record(item: JobItem, status: str, message: str, result: dict) -> None:
    item.status, item.message, item.result = status, message, result or {}
    item.finished_at = timezone.now() if status != JobItem.Status.WAITING else None
    item.worker = ""
    item.save(update_fields=["status", "message", "result", "finished_at", "worker"])


def _home_problem(error: HomeError, folder: str) -> str:
    """A HomeError as one sentence for staff and the student."""
    if error.code == "disk_full":
        return note(N_("The disk holding the home is full: nothing more was written (%(detail)s)."), detail=str(error))
    if error.code == "too_big":
        return note(
            N_("The folder %(folder)s is %(size)s, more than the limit of %(limit)s: nothing was handed in."),
            folder=folder,
            size=_size(error.details.get("size", 0)),
            limit=_size(error.details.get("limit", 0)),
        )
    if error.code == "too_many_files":
        return note(
            N_("The folder %(folder)s has more than %(count)d files: nothing was handed in."),
            folder=folder,
            count=error.details.get("limit", 0),
        )
    if error.code == "no_folder":
        return note(N_("There is no folder %(folder)s in the home."), folder=folder)
    if error.code == "not_a_folder":
        return note(N_("%(folder)s in the home is not a folder."), folder=folder)
    if error.code == "no_home":
        return note(N_("The home does not exist: the student has never started JupyterLab."))
    return note(N_("The home could not be reached: %(detail)s"), detail=str(error))


def _size(size: int) -> str:
    return f"{size / 1024**2:.1f} MB" if size >= 1024**2 else f"{size / 1024:.0f} KB"


# --- hand out, return ------------------------------------------------------------------------------------------
def _deliver(item, student, homes, handout: Handout, path: str, bundle, version=None) -> tuple[dict, str]:
    home = homes.home(student.username)
    if student.username not in homes.ready([home]):
        raise _Outcome(
            JobItem.Status.WAITING,
            note(N_("Waiting for the home: the files arrive once the student has started JupyterLab once.")),
        )
    delivery = Delivery.objects.filter(student=student, path=path).first()
    remembered = delivery.files if delivery else {}
    files = {rel: meta["sha256"] for rel, meta in bundle.files.items()}
    try:
        result = homes.deliver(home, path, bundle.path, files, remembered)
    except HomeError as error:
        if isinstance(error, EngineAway):
            raise
        partial = error.details.get("partial")
        if partial:
            _remember(student, path, handout, version, partial)
        raise _Outcome(JobItem.Status.FAILED, _home_problem(error, path)) from None
    _remember(student, path, handout, version, result)
    summary = {key: result[key] for key in ("added", "restored", "updated", "beside")}
    summary["unchanged"] = len(result["unchanged"])
    message = ""
    if result["beside"]:
        message = note(
            N_("Changed by the student, so the new version is beside it: %(files)s"),
            files=", ".join(f"{b['file']} → {b['new']}" for b in result["beside"]),
        )
    return summary, message


def _remember(student, path, handout, version, result: dict) -> None:
    Delivery.objects.update_or_create(
        student=student,
        path=path,
        defaults={
            "handout": handout,
            "version": version,
            "files": result["files"],
            "beside": result["beside"],
            "delivered_at": timezone.now(),
        },
    )


def _hand_out_item(item, student, homes):
    job = item.job
    handout, version = job.handout, job.version
    if not handout.is_for(student):
        raise _Outcome(JobItem.Status.SKIPPED, note(N_("No longer among the students of this hand-out.")))
    newer = Delivery.objects.filter(student=student, path=handout.home_path, version__number__gt=version.number)
    if newer.exists():
        raise _Outcome(JobItem.Status.SKIPPED, note(N_("A newer version is already there.")))
    return _deliver(item, student, homes, handout, handout.home_path, version.bundle, version)


def _warm_up_item(item, student, homes):
    from course import warmup

    try:
        return warmup.warm_item(item)
    except warmup.Outcome as outcome:
        raise _Outcome(outcome.status, str(outcome)) from None


def _return_item(item, student, homes):
    assignment = item.job.handout
    path = f"{assignment.home_path}/feedback"
    result, message = _deliver(item, student, homes, assignment, path, item.bundle)
    Grade.objects.update_or_create(
        assignment_id=assignment.pk, student=student, defaults={"feedback": sorted(item.bundle.files)}
    )
    return result, message


# --- collect -----------------------------------------------------------------------------------------------------
def _collect(item, student, homes, assignment: Assignment, submission: Submission | None) -> Submission:
    """Copy the student's assignment folder into the hand-ins; records `submission` (made when None)."""
    from django.conf import settings

    home = homes.home(student.username)
    if student.username not in homes.ready([home]):
        raise _Outcome(
            JobItem.Status.FAILED, note(N_("There is no home folder yet: start JupyterLab once, then hand in again."))
        )
    store = settings.COURSE.handins_dir / str(assignment.pk)
    store.mkdir(parents=True, exist_ok=True)
    partial = store / f".partial-{item.pk}"
    shutil.rmtree(partial, ignore_errors=True)  # from a worker killed while copying
    try:
        summary = homes.collect(
            home,
            assignment.home_path,
            partial,
            max_bytes=assignment.size_limit,
            max_files=settings.COURSE.handin_max_files,
        )
    except HomeError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, EngineAway):
            raise
        if submission is None and error.code in ("no_folder", "not_a_folder"):
            raise _Outcome(
                JobItem.Status.SKIPPED,
                note(
                    N_("Nothing to collect: there was no folder %(folder)s at the due time."),
                    folder=assignment.home_path,
                ),
            ) from None
        raise _Outcome(JobItem.Status.FAILED, _home_problem(error, assignment.home_path)) from None
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise _Outcome(
            JobItem.Status.FAILED, note(N_("The server could not store the hand-in: %(error)s"), error=exc.strerror)
        ) from None
    with transaction.atomic():
        if submission is None:
            submission = Submission.objects.create(
                assignment=assignment,
                student=student,
                requested_at=assignment.due_at,
                auto_collected=True,
                status=Submission.Status.PENDING,
            )
            JobItem.objects.filter(pk=item.pk).update(submission=submission)
            item.submission = submission
        folder = f"{assignment.pk}/{student.pk}-{submission.pk}"
        target = settings.COURSE.handins_dir / folder
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        submission.status, submission.message = Submission.Status.DONE, ""
        submission.folder, submission.collected_at = folder, timezone.now()
        submission.files, submission.size, submission.file_count = (
            summary["files"],
            summary["size"],
            len(summary["files"]),
        )
        if summary["skipped"]:
            submission.message = note(
                N_("Left out: %(files)s"),
                files=", ".join(f"{s['path']} ({s['why']})" for s in summary["skipped"][:20]),
            )
        submission.save()
    return submission


def _collect_result(submission: Submission) -> tuple[dict, str]:
    result = {"files": submission.file_count, "size": submission.size, "submission": submission.pk}
    return result, submission.message


def _collect_item(item, student, homes):
    submission = item.submission
    if submission is None:
        raise _Outcome(JobItem.Status.FAILED, note(N_("The hand-in record was deleted.")))
    if submission.status == Submission.Status.DONE:
        return _collect_result(submission)  # done before the worker was stopped
    return _collect_result(_collect(item, student, homes, submission.assignment, submission))


def _auto_collect_item(item, student, homes):
    assignment = item.job.handout.assignment
    if item.submission_id and item.submission.status == Submission.Status.DONE:
        return _collect_result(item.submission)
    own = assignment.submissions.filter(
        student=student,
        auto_collected=False,
        requested_at__lte=assignment.due_at,
        status__in=(Submission.Status.PENDING, Submission.Status.DONE),
    ).order_by("-requested_at")
    if handed_in := own.first():
        raise _Outcome(
            JobItem.Status.SKIPPED,
            note(
                N_("Handed in at %(time)s, before the due time: that hand-in counts."),
                time=timezone.localtime(handed_in.requested_at).strftime("%Y-%m-%d %H:%M:%S"),
            ),
        )
    home = homes.home(student.username)
    if student.username not in homes.ready([home]):
        raise _Outcome(
            JobItem.Status.SKIPPED, note(N_("Nothing to collect: the student has never started JupyterLab."))
        )
    return _collect_result(_collect(item, student, homes, assignment, None))


def waiting_students(limit: int = 500) -> list[JobItem]:
    """Items waiting for a home, oldest first (the worker looks whether their homes exist now)."""
    return list(
        JobItem.objects.filter(status=JobItem.Status.WAITING)
        .exclude(job__status=Job.Status.CANCELLED)
        .filter(Q(student__is_active=True))
        .select_related("student")
        .order_by("pk")[:limit]
    )
