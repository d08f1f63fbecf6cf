"""Staff pages of the course in the admin: an assignment's table of students (scores and comments in place),
its hand-ins as one zip, a notebook's read-only preview, scores from a CSV, returning it, a group's
page (班级概览) with its grade export, and warming up the group's servers (预热服务器) with its progress. Thin
views: the rules are in course/handins.py, grades.py, preview.py, overview.py and warmup.py.

Permissions, checked here on every request (a hidden button is never the only wall):
- seeing an assignment's table, a group's page: `course.view_assignment`;
- downloading hand-ins and previewing them: `course.view_submission`;
- exporting grades, the scores template: `course.view_grade`;
- saving scores and comments (table or CSV), returning: `course.change_grade` and `course.add_grade`;
- warming up a group: `course.warm_up`; following a warm-up: `course.view_job`.
Teachers hold all of them, TAs the view ones (accounts/roles.py); anyone else gets 403.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts import roles
from course import grades, handins, jobs, overview, preview, warmup
from course.forms import ReturnForm, ScoresConfirmForm, ScoresUploadForm, WarmUpForm
from course.models import Assignment, Job, JobItem, Submission

GRADE_CHANGE = ("course.change_grade", "course.add_grade")


def _require(request, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, "opts": Assignment._meta, **extra}


def _group_of(request):
    """The group chosen with ?group=<id> (a class, not a role), or None."""
    raw = request.GET.get("group", "")
    if not raw.isdigit():
        return None
    return roles.class_groups().filter(pk=int(raw)).first()


# --- an assignment's table -------------------------------------------------------------------------------------
def students_view(request, pk):
    _require(request, "course.view_assignment")
    assignment = get_object_or_404(Assignment.objects.prefetch_related("groups"), pk=pk)
    may_grade = request.user.has_perms(GRADE_CHANGE)
    if request.method == "POST" and not may_grade:
        raise PermissionDenied
    group = _group_of(request)
    status = request.GET.get("status", "")
    search = request.GET.get("q", "")
    order = request.GET.get("o", "username")
    rows = handins.rows(assignment, group=group, status=status, search=search, order=order)
    forms_ = grades.row_forms(rows, request.POST if request.method == "POST" else None) if may_grade else []
    if request.method == "POST":
        posted = [form for form in forms_ if form.is_bound]
        if all([form.is_valid() for form in posted]):
            count = grades.save_forms(assignment, posted, request.user)
            if count:
                returned = assignment.grades.filter(returned_at__isnull=False).exists()
                text = ngettext("Saved the grade of %(n)d student.", "Saved the grades of %(n)d students.", count)
                if returned:
                    text += " " + _("This assignment has been returned: students see the change at once.")
                messages.success(request, text % {"n": count})
            else:
                messages.info(request, _("Nothing changed."))
            return redirect(request.get_full_path())
        messages.error(request, _("Nothing was saved: correct the scores marked below."))
    query = {k: v for k, v in {"group": group.pk if group else "", "status": status, "q": search}.items() if v}
    everyone = handins.rows(assignment) if (group or status or search) else rows
    context = _context(
        request,
        _("Hand-ins: %(title)s") % {"title": assignment.title},
        assignment=assignment,
        rows=rows,
        may_grade=may_grade,
        may_download=request.user.has_perm("course.view_submission"),
        group=group,
        groups=assignment.groups.all() if not assignment.for_everyone else roles.class_groups().order_by("name"),
        status=status,
        statuses=[
            ("", _("All students")),
            ("in", _("Handed in")),
            ("missing", _("Not handed in")),
            ("late", _("Late")),
            ("auto", _("Collected at the due time")),
            ("graded", _("Graded")),
            ("ungraded", _("Not graded")),
        ],
        search=search,
        order=order,
        query=urlencode(query),
        columns=[
            ("username", _("Username (学号)")),
            ("name", _("Name")),
            (None, _("Group")),
            ("time", _("Handed in at")),
            ("late", _("Late")),
            ("auto", _("Auto-collected")),
            ("files", _("Files")),
            ("size", _("Size")),
            ("score", _("Score")),
        ],
        counts={
            "students": sum(1 for r in everyone if r.listed),
            "handed_in": sum(1 for r in everyone if r.counting),
            "late": sum(1 for r in everyone if r.counting and r.counting.late),
            "auto": sum(1 for r in everyone if r.counting and r.counting.auto_collected),
            "missing": sum(1 for r in everyone if r.listed and not r.counting),
            "returned": handins.when_returned(r.grade for r in everyone if r.grade),
        },
        past_due=timezone.now() > assignment.due_at,
    )
    return render(request, "admin/course/assignment/students.html", context)


# --- hand-ins: the zip, one student's zip, a notebook's preview ------------------------------------------------
def _zip_response(submissions, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(handins.stream_zip(submissions), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response


def handins_zip_view(request, pk):
    _require(request, "course.view_submission")
    assignment = get_object_or_404(Assignment, pk=pk)
    group = _group_of(request)
    return _zip_response(handins.counting_submissions(assignment, group), handins.zip_name(assignment, group))


def handin_zip_view(request, pk, submission_pk):
    _require(request, "course.view_submission")
    submission = get_object_or_404(
        Submission.objects.select_related("student", "assignment"),
        pk=submission_pk,
        assignment_id=pk,
        status=Submission.Status.DONE,
    )
    name = f"{submission.assignment.folder}_{handins.student_folder(submission.student)}.zip"
    return _zip_response([submission], name)


def preview_view(request, pk, submission_pk):
    _require(request, "course.view_submission")
    submission = get_object_or_404(
        Submission.objects.select_related("student", "assignment"),
        pk=submission_pk,
        assignment_id=pk,
        status=Submission.Status.DONE,
    )
    file = request.GET.get("file", "")
    if not file.lower().endswith(".ipynb") or file not in {f["path"] for f in submission.files}:
        raise Http404
    path = submission.path / file
    if not path.resolve().is_relative_to(submission.path.resolve()):
        raise Http404
    student = submission.student
    title = f"{student.username} {handins.display_name(student)} · {submission.assignment.title}"
    try:
        html = preview.render(path, title=title, details=preview.banner_details(submission, file))
    except preview.PreviewError as exc:
        html = f'<!doctype html><meta charset="utf-8"><title>{escape(file)}</title><p>{escape(str(exc))}</p>'
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = preview.PREVIEW_CSP
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


# --- scores from a CSV, the template to fill in -----------------------------------------------------------------
def scores_template_view(request, pk):
    _require(request, "course.view_grade")
    assignment = get_object_or_404(Assignment, pk=pk)
    rows = handins.rows(assignment, group=_group_of(request))
    response = HttpResponse(grades.template_csv(rows).encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    filename = f"{assignment.folder}_评分表.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


def import_scores_view(request, pk):
    _require(request, "course.view_assignment", *GRADE_CHANGE)
    assignment = get_object_or_404(Assignment, pk=pk)
    context = _context(
        request,
        _("Import scores: %(title)s") % {"title": assignment.title},
        assignment=assignment,
        status_labels={grades.CHANGE: _("to change"), grades.UNCHANGED: _("unchanged"), grades.ERROR: _("error")},
    )
    if request.method == "POST" and "confirm" in request.POST:
        confirm = ScoresConfirmForm(request.POST)
        if confirm.is_valid():
            report = grades.import_scores(assignment, confirm.rows, request.user)
            if report.ok:
                count = report.count(grades.CHANGE)
                messages.success(
                    request,
                    ngettext("Imported: the grade of %(n)d student changed.",
                             "Imported: the grades of %(n)d students changed.", count) % {"n": count},
                )  # fmt: skip
                return redirect("admin:course_assignment_students", pk)
            context.update(report=report, rows=_errors_first(report), summary=_summary(report))
            messages.error(request, _("Nothing was saved: the file has errors (see the rows marked)."))
            context["form"] = ScoresUploadForm()
            return render(request, "admin/course/assignment/import_scores.html", context)
        messages.error(request, _("The preview expired; upload the file again."))
        upload = ScoresUploadForm()
    else:
        posted = request.method == "POST"
        upload = ScoresUploadForm(request.POST if posted else None, request.FILES if posted else None)
    if request.method == "POST" and upload.is_valid():
        report = grades.check_scores(assignment, upload.rows)
        confirm = ScoresConfirmForm(initial={"text": upload.text})
        context.update(report=report, rows=_errors_first(report), confirm=confirm, summary=_summary(report))
    context["form"] = upload
    return render(request, "admin/course/assignment/import_scores.html", context)


def _summary(report) -> str:
    return _("%(change)d to change, %(unchanged)d unchanged, %(error)d with errors.") % {
        "change": report.count(grades.CHANGE),
        "unchanged": report.count(grades.UNCHANGED),
        "error": report.count(grades.ERROR),
    }


def _errors_first(report):
    return sorted(report.rows, key=lambda row: row.status != grades.ERROR)


# --- returning ---------------------------------------------------------------------------------------------------
def return_view(request, pk):
    _require(request, "course.view_assignment")
    assignment = get_object_or_404(Assignment, pk=pk)
    if request.method == "POST":
        _require(request, *GRADE_CHANGE)
    students = list(handins.students_of(assignment))
    posted = request.method == "POST"
    form = ReturnForm(
        request.POST if posted else None, request.FILES if posted else None, assignment=assignment, students=students
    )
    if request.method == "POST" and form.is_valid():
        job = jobs.return_feedback(assignment, by=request.user, files=form.files_by_student)
        text = _("Returned: students see their scores and comments on their course page.")
        if job is not None:
            text += " " + ngettext(
                "The files of %(n)d student are being written into their feedback folder (job %(job)d).",
                "The files of %(n)d students are being written into their feedback folders (job %(job)d).",
                len(form.files_by_student),
            ) % {"n": len(form.files_by_student), "job": job.pk}
        messages.success(request, text)
        return redirect("admin:course_assignment_students", pk)
    graded = assignment.grades.exclude(score__isnull=True, comment="")
    context = _context(
        request,
        _("Return: %(title)s") % {"title": assignment.title},
        assignment=assignment,
        form=form,
        may_return=request.user.has_perms(GRADE_CHANGE),
        graded=graded.count(),
        returned=graded.filter(returned_at__isnull=False).count(),
        students=len(students),
        jobs=list(assignment.jobs.filter(kind=Job.Kind.RETURN).order_by("-created_at")[:10]),
    )
    return render(request, "admin/course/assignment/return.html", context)


# --- a group's page and its grade export -------------------------------------------------------------------------
def _overview_index(request):
    _require(request, "course.view_assignment")
    groups = (
        roles.class_groups()
        .annotate(students=Count("user", filter=Q(user__is_staff=False), distinct=True))
        .order_by("name")
    )
    context = {**admin.site.each_context(request), "title": _("Class overview"), "groups": groups}
    return render(request, "admin/course/overview_index.html", context)


def _overview(request, group_pk):
    _require(request, "course.view_assignment")
    group = get_object_or_404(roles.class_groups(), pk=group_pk)
    data = overview.overview(group)
    context = {
        **admin.site.each_context(request),
        "title": _("Class overview: %(group)s") % {"group": group.name},
        "group": group,
        "encodings": grades.ENCODINGS,
        "may_export": request.user.has_perm("course.view_grade"),
        "may_add": request.user.has_perm("course.add_assignment"),
        "may_warm_up": request.user.has_perm("course.warm_up"),
        **data,
    }
    return render(request, "admin/course/overview.html", context)


def _grades_export(request, group_pk):
    _require(request, "course.view_grade")
    group = get_object_or_404(Group, pk=group_pk)
    encoding = request.GET.get("encoding", "gb18030")
    if encoding not in grades.ENCODINGS:
        encoding = "gb18030"
    data = grades.encode(grades.export_csv(group), encoding)
    response = HttpResponse(data, content_type=f"text/csv; charset={'utf-8' if encoding == 'utf-8-sig' else encoding}")
    filename = f"{group.name}_成绩_{timezone.localtime().strftime('%Y%m%d')}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


# --- warming up a group's servers ------------------------------------------------------------------------------
def _warm_up(request, group_pk):
    _require(request, "course.view_assignment", "course.warm_up")
    group = get_object_or_404(roles.class_groups(), pk=group_pk)
    form = WarmUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            job = warmup.warm_up(group, by=request.user, run_at=form.cleaned_data["run_at"])
        except warmup.WarmupRefused as refused:
            form.add_error(None, str(refused))
        else:
            return redirect("course_warm_up_progress", job.pk)
    capacity = warmup.capacity(group)
    context = {
        **admin.site.each_context(request),
        "title": _("Warm up servers: %(group)s") % {"group": group.name},
        "group": group,
        "form": form,
        "capacity": capacity,
        "members": group.user_set.count(),
        "grace": settings.COURSE.warmup_grace_minutes,
        "concurrency": settings.COURSE.warmup_concurrency,
        "earlier": list(Job.objects.filter(kind=Job.Kind.WARM_UP, group=group).order_by("-created_at")[:5]),
    }
    return render(request, "admin/course/warm_up.html", context)


def _warm_up_progress(request, job_pk):
    _require(request, "course.view_job")
    job = get_object_or_404(Job.objects.select_related("group", "created_by"), pk=job_pk, kind=Job.Kind.WARM_UP)
    items = list(job.items.select_related("student").order_by("username"))
    counts = job.progress()
    total = sum(counts.values())
    finished = counts["done"] + counts["skipped"] + counts["failed"]
    rows = []
    for item in items:
        if item.status == JobItem.Status.DONE:
            result = _("already running") if item.result.get("state") == "already running" else _("started")
        elif item.status == JobItem.Status.RUNNING:
            result = _("starting")
        else:
            result = item.get_status_display()
        rows.append((item, result, "" if item.status == JobItem.Status.DONE and not item.result.get("seconds")
                     else item.shown_message))  # fmt: skip
    context = {
        **admin.site.each_context(request),
        "title": _("Warm-up: %(group)s") % {"group": job.group.name if job.group else "—"},
        "job": job,
        "rows": rows,
        "counts": counts,
        "total": total,
        "finished": finished,
        "percent": round(100 * finished / total) if total else (100 if job.expanded else 0),
        "live": job.status in (Job.Status.PENDING, Job.Status.RUNNING),
        "started": sum(1 for item in items if item.result.get("state") == "started"),
        "already": sum(1 for item in items if item.result.get("state") == "already running"),
    }
    return render(request, "admin/course/warm_up_progress.html", context)


warm_up_page = admin.site.admin_view(_warm_up)
warm_up_progress = admin.site.admin_view(_warm_up_progress)
overview_index = admin.site.admin_view(_overview_index)
overview_page = admin.site.admin_view(_overview)
grades_export = admin.site.admin_view(_grades_export)


def assignment_urls(admin_site):
    from django.urls import path

    view = admin_site.admin_view
    return [
        path("<int:pk>/students/", view(students_view), name="course_assignment_students"),
        path("<int:pk>/handins.zip", view(handins_zip_view), name="course_assignment_handins_zip"),
        path("<int:pk>/handins/<int:submission_pk>.zip", view(handin_zip_view), name="course_assignment_handin_zip"),
        path("<int:pk>/handins/<int:submission_pk>/preview/", view(preview_view), name="course_assignment_preview"),
        path("<int:pk>/scores.csv", view(scores_template_view), name="course_assignment_scores_template"),
        path("<int:pk>/scores/import/", view(import_scores_view), name="course_assignment_import_scores"),
        path("<int:pk>/return/", view(return_view), name="course_assignment_return"),
    ]
