"""A teacher's page per group (班级概览): its students, who has not signed up yet, whose server runs, and each
assignment's hand-ins; the links to everything else about the group.

Rules:
- The students of a group are its members who are not staff, active or not (a deactivated student is shown
  as such). "Not signed up yet": an account made from a roster that nobody has used, that is, with no usable
  password and never logged in (accounts/roster.py makes them so; a set-password link or a sign-up ends it).
- Whose server runs is asked of the hub as the usage page asks it (staff/usage.py: the same deadline, and
  "unknown" with a note when the hub does not answer in time).
- An assignment belongs to the group when it is for the group or for everyone. Its counts are over the
  group's active students: handed in (a hand-in that counts), of which late and collected at the due time,
  and not handed in; graded (a score or a comment) and returned.
- A fixed number of queries whatever the size of the group (200 students and 5 assignments load in well
  under a second).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Max, Q
from django.utils import timezone

from course.grades import group_assignments, group_students
from course.models import Delivery, Grade, Material, Submission, Version
from staff import usage


@dataclass
class Mark:
    """One student's state for one assignment."""

    handed_in: bool = False
    late: bool = False
    auto: bool = False
    score: object = None
    graded: bool = False
    returned: bool = False


@dataclass
class StudentRow:
    user: object
    name: str
    signed_up: bool
    running: bool | None  # None: unknown (the hub did not answer)
    pending: str | None = None
    marks: list[Mark] = field(default_factory=list)


@dataclass
class AssignmentRow:
    assignment: object
    students: int = 0
    handed_in: int = 0
    late: int = 0
    auto: int = 0
    graded: int = 0
    returned: int = 0

    @property
    def missing(self) -> int:
        return self.students - self.handed_in

    @property
    def past_due(self) -> bool:
        return timezone.now() > self.assignment.due_at


@dataclass
class MaterialRow:
    material: object
    version: int | None
    delivered: int = 0  # active students who have the current version
    students: int = 0


def signed_up(user) -> bool:
    return user.last_login is not None or user.has_usable_password()


def overview(group) -> dict:
    students = list(group_students(group))
    active_ids = {s.pk for s in students if s.is_active}
    ids = [s.pk for s in students]
    assignments = list(group_assignments(group))
    materials = list(
        Material.objects.filter(Q(groups=group) | Q(for_everyone=True)).distinct().order_by("release_at", "pk")
    )
    hub, hub_problem = usage.servers()

    counting: dict[tuple[int, int], tuple] = {}
    for assignment_id, student_id, late, auto in (
        Submission.objects.filter(assignment__in=assignments, student_id__in=ids, status=Submission.Status.DONE)
        .order_by("requested_at", "pk")
        .values_list("assignment_id", "student_id", "late", "auto_collected")
    ):
        counting[(assignment_id, student_id)] = (late, auto)
    grades = {
        (a, s): (score, bool(score is not None or comment), returned is not None)
        for a, s, score, comment, returned in Grade.objects.filter(
            assignment__in=assignments, student_id__in=ids
        ).values_list("assignment_id", "student_id", "score", "comment", "returned_at")
    }

    rows = []
    summaries = [AssignmentRow(assignment=a) for a in assignments]
    for student in students:
        hub_user = hub.get(student.username) if hub is not None else None
        row = StudentRow(
            user=student,
            name=student.get_full_name().strip(),
            signed_up=signed_up(student),
            running=bool(hub_user and hub_user.server_running) if hub is not None else None,
            pending=hub_user.server_pending if hub_user else None,
        )
        for summary in summaries:
            key = (summary.assignment.pk, student.pk)
            mark = Mark()
            if key in counting:
                mark.handed_in = True
                mark.late, mark.auto = counting[key]
            if key in grades:
                mark.score, mark.graded, mark.returned = grades[key]
            row.marks.append(mark)
            if student.pk in active_ids:
                summary.students += 1
                summary.handed_in += mark.handed_in
                summary.late += mark.handed_in and mark.late
                summary.auto += mark.handed_in and mark.auto
                summary.graded += mark.graded
                summary.returned += mark.graded and mark.returned
        rows.append(row)

    current = dict(
        Version.objects.filter(handout__in=materials)
        .values("handout_id")
        .annotate(n=Max("number"))
        .values_list("handout_id", "n")
    )
    delivered: dict[int, int] = {}
    for handout_id, number in Delivery.objects.filter(handout__in=materials, student_id__in=active_ids).values_list(
        "handout_id", "version__number"
    ):
        if number is not None and number >= current.get(handout_id, 0):
            delivered[handout_id] = delivered.get(handout_id, 0) + 1
    material_rows = [
        MaterialRow(material=m, version=current.get(m.pk), delivered=delivered.get(m.pk, 0), students=len(active_ids))
        for m in materials
    ]
    return {
        "rows": rows,
        "assignments": summaries,
        "materials": material_rows,
        "hub_problem": hub_problem,
        "counts": {
            "students": len(students),
            "active": len(active_ids),
            "not_signed_up": sum(1 for r in rows if not r.signed_up and r.user.is_active),
            "running": sum(1 for r in rows if r.running),
        },
    }
