"""The course in the admin: hand out material and assignments (a new upload is a new version), follow every
job with its per-student results, see hand-ins and grades. The richer staff pages build on these."""

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import ratelimits
from course import jobs
from course.forms import AssignmentForm, MaterialForm
from course.messages import N_, note
from course.models import Assignment, Grade, Job, JobItem, Material, Submission, Version
from portal.admin_site import CreatedByStaffMixin


class VersionInline(admin.TabularInline):
    model = Version
    fields = ("number", "bundle", "note", "created_at", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class HandoutAdmin(CreatedByStaffMixin, admin.ModelAdmin):
    list_display = ("title", "home_path", "group_names", "for_everyone", "release_at", "version", "progress")
    list_filter = ("groups", "for_everyone")
    search_fields = ("title", "folder")
    filter_horizontal = ("groups",)
    inlines = [VersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "versions")

    @admin.display(description=_("groups"))
    def group_names(self, obj):
        return ", ".join(group.name for group in obj.groups.all())

    @admin.display(description=_("version"))
    def version(self, obj):
        return max((v.number for v in obj.versions.all()), default="-")

    @admin.display(description=_("latest hand-out"))
    def progress(self, obj):
        job = obj.jobs.filter(kind=Job.Kind.HAND_OUT).exclude(status=Job.Status.CANCELLED).first()
        return job_progress(job) if job else "-"

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "folder") if obj is not None and obj.handed_out else fields

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # A post may carry an upload (a zip unpacked and hashed): limited per staff account.
        if refused := ratelimits.ADMIN_UPLOADS.refusal(request):
            return refused
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        if form.bundle is not None:
            version = jobs.hand_out(obj, form.bundle, by=request.user, note=form.cleaned_data.get("note", ""))
            when = timezone.localtime(max(timezone.now(), obj.release_at)).strftime("%Y-%m-%d %H:%M")
            self.message_user(
                request,
                _("Version %(number)d of %(title)s is handed out at %(time)s (Jobs shows each student's result).")
                % {"number": version.number, "title": obj.title, "time": when},
                messages.SUCCESS,
            )
        elif change:
            jobs.reschedule(obj)


@admin.register(Material)
class MaterialAdmin(HandoutAdmin):
    form = MaterialForm


@admin.register(Assignment)
class AssignmentAdmin(HandoutAdmin):
    form = AssignmentForm
    list_display = (
        "title", "home_path", "group_names", "release_at", "due_at", "late_policy", "handed_in", "progress", "table",
    )  # fmt: skip
    change_form_template = "admin/course/assignment/change_form.html"

    def get_urls(self):
        from course.admin_views import assignment_urls

        return assignment_urls(self.admin_site) + super().get_urls()

    def get_queryset(self, request):
        done = Count("submissions__student", filter=Q(submissions__status=Submission.Status.DONE), distinct=True)
        return super().get_queryset(request).annotate(handed_in_count=done)

    @admin.display(description=_("handed in"), ordering="handed_in_count")
    def handed_in(self, obj):
        return obj.handed_in_count

    @admin.display(description=_("students"))
    def table(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:course_assignment_students", args=[obj.pk]), _("Hand-ins and scores")
        )


def job_progress(job: Job) -> str:
    counts = job.progress()
    total = sum(counts.values())
    if not job.expanded:
        return _("at %(time)s") % {"time": timezone.localtime(job.run_at).strftime("%Y-%m-%d %H:%M")}
    parts = [_("%(done)d/%(total)d done") % {"done": counts["done"] + counts["skipped"], "total": total}]
    for status in (JobItem.Status.FAILED, JobItem.Status.WAITING, JobItem.Status.PENDING, JobItem.Status.RUNNING):
        if counts[status]:
            parts.append(f"{counts[status]} {JobItem.Status(status).label}")
    return ", ".join(str(part) for part in parts)


class JobItemInline(admin.TabularInline):
    model = JobItem
    fields = ("username", "status", "shown", "details", "attempts", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=_("message"))
    def shown(self, obj):
        return obj.shown_message

    @admin.display(description=_("details"))
    def details(self, obj):
        result = obj.result or {}
        lines = [
            (key, ", ".join(map(str, value)) if isinstance(value, list) else value) for key, value in result.items()
        ]
        return format_html_join("", "<div>{}: {}</div>", ((k, v) for k, v in lines if v not in ([], "", 0, None)))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("pk", "kind", "handout", "group", "run_at", "status", "progress", "shown", "created_by")
    list_filter = ("kind", "status")
    search_fields = ("handout__title", "items__username")
    readonly_fields = (
        "kind", "handout", "version", "group", "run_at", "priority", "status", "progress", "shown", "expanded", "created_at",
        "created_by", "started_at", "finished_at",
    )  # fmt: skip
    fields = readonly_fields
    inlines = [JobItemInline]
    actions = ["retry_failed", "cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("handout", "group", "created_by")

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return job_progress(obj)

    @admin.display(description=_("message"))
    def shown(self, obj):
        return obj.shown_message

    @admin.action(description=_("Do the failed students again"), permissions=["change"])
    def retry_failed(self, request, queryset):
        count = sum(jobs.retry(job) for job in queryset)
        self.message_user(request, ngettext("%d student to do again.", "%d students to do again.", count) % count)

    @admin.action(description=_("Cancel what has not run yet"), permissions=["change"])
    def cancel(self, request, queryset):
        count = 0
        for job in queryset.exclude(status__in=(Job.Status.DONE, Job.Status.CANCELLED)):
            job.items.filter(status__in=(JobItem.Status.PENDING, JobItem.Status.WAITING)).update(
                status=JobItem.Status.SKIPPED, message=note(N_("Cancelled by staff."))
            )
            job.status, job.finished_at = Job.Status.CANCELLED, timezone.now()
            job.save(update_fields=["status", "finished_at"])
            jobs.record_finished(job)
            count += 1
        self.message_user(request, ngettext("%d job cancelled.", "%d jobs cancelled.", count) % count)


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("assignment", "student", "requested_at", "status", "late", "auto_collected", "file_count", "size")
    list_filter = ("assignment", "status", "late", "auto_collected")
    search_fields = ("student__username", "student__first_name", "assignment__title")
    readonly_fields = [f.name for f in Submission._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Grade)
class GradeAdmin(admin.ModelAdmin):
    list_display = ("assignment", "student", "score", "returned_at", "updated_at")
    list_filter = ("assignment",)
    search_fields = ("student__username", "student__first_name")
    fields = ("assignment", "student", "score", "comment", "feedback", "returned_at")
    readonly_fields = ("feedback", "returned_at")

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
