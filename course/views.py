"""The students' course page: their material and assignments, the 提交 button, their hand-ins and what staff
returned. Thin views: the rules are in course/models.py and course/jobs.py."""

from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from course import jobs
from course.models import Assignment, Delivery, Grade, Handout, JobItem, Submission


def _entries(user):
    """One entry per released hand-out for `user`, with what the page shows about it."""
    now = timezone.now()
    handouts = list(
        Handout.objects.for_student(user).released(now).select_related("assignment").order_by("-release_at")
    )
    paths = [h.home_path for h in handouts]
    paths += [f"{h.home_path}/feedback" for h in handouts if h.kind == Handout.Kind.ASSIGNMENT]
    deliveries = {d.path: d for d in Delivery.objects.filter(student=user, path__in=paths).select_related("version")}
    waiting = set(
        JobItem.objects.filter(student=user, status=JobItem.Status.WAITING, job__handout__in=handouts).values_list(
            "job__handout", flat=True
        )
    )
    submissions: dict[int, list] = {}
    for submission in Submission.objects.filter(student=user, assignment__in=handouts).order_by("-requested_at", "-pk"):
        submissions.setdefault(submission.assignment_id, []).append(submission)
    grades = {
        g.assignment_id: g
        for g in Grade.objects.filter(student=user, assignment__in=handouts, returned_at__isnull=False)
    }
    entries = []
    for handout in handouts:
        entry = {"handout": handout, "delivery": deliveries.get(handout.home_path), "waiting": handout.pk in waiting}
        if handout.kind == Handout.Kind.ASSIGNMENT:
            assignment = handout.assignment
            mine = submissions.get(handout.pk, [])
            entry.update(
                assignment=assignment,
                refusal=assignment.handin_refusal(now),
                late_now=now > assignment.due_at,
                latest=mine[0] if mine else None,
                counting=next((s for s in mine if s.status == Submission.Status.DONE), None),
                grade=grades.get(handout.pk),
                feedback=_feedback(handout, grades.get(handout.pk), deliveries.get(f"{handout.home_path}/feedback")),
            )
        entries.append(entry)
    return entries


def lab_link(path: str) -> str:
    """A link that opens `path` of the student's home in their JupyterLab (the hub's user-redirect: their own
    server, on their own host, started if it is not running)."""
    return f"{settings.JUPYTERHUB_URL}hub/user-redirect/lab/tree/{quote(path)}"


def _feedback(handout, grade, delivery) -> list[dict]:
    """The returned files: each with where it is in the home (beside the student's own file when they had one of
    that name) and a link that opens it in JupyterLab."""
    if grade is None or not grade.feedback:
        return []
    folder = f"{handout.home_path}/feedback"
    beside = {b["file"]: b["new"] for b in (delivery.beside if delivery else [])}
    files = []
    for name in grade.feedback:
        path = beside.get(f"{folder}/{name}", f"{folder}/{name}")
        files.append({"name": name, "path": path, "beside": path != f"{folder}/{name}", "url": lab_link(path)})
    return files


@login_required
def course_page(request):
    entries = _entries(request.user)
    return render(
        request,
        "course/student.html",
        {
            "materials": [e for e in entries if "assignment" not in e],
            "assignments": [e for e in entries if "assignment" in e],
        },
    )


@login_required
@require_POST
def hand_in(request, pk):
    assignment = get_object_or_404(Assignment, pk=pk)
    try:
        jobs.request_handin(assignment, request.user)
    except jobs.HandinRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(
            request,
            _("Your folder %(folder)s is being copied: this page shows when it is done.")
            % {"folder": assignment.home_path},
        )
    return redirect("course")
