"""Staff roles (accounts.roles): a teacher or a TA does their daily work in the admin, and neither can make
anyone, themselves included, more powerful. Every escalation is tried against the real admin with the raw
POST a forged form would send, and the database must come out unchanged."""

from __future__ import annotations

from html.parser import HTMLParser
from http import HTTPStatus

import pytest
from django.apps import apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import roles, setpassword
from accounts.models import InviteCode, StaffRole
from staff.models import Announcement
from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db
ACTORS = ["teacher", "ta"]


# --- helpers ------------------------------------------------------------------------------------------------


class _FormReader(HTMLParser):
    """What a browser would submit from the page's main form: inputs (checked boxes only), selected options,
    textareas. Enough for the admin's change forms."""

    def __init__(self):
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.append((a["name"], a.get("value") or "on"))  # a browser sends "on" without a value
                return
            self.data.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.data.append((self._textarea, ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            name, value = self.data.pop()
            self.data.append((name, value + data))


def form_data(response, **changes) -> dict:
    reader = _FormReader()
    reader.feed(response.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in reader.data:
        data.setdefault(name, []).append(value)
    data.pop("csrfmiddlewaretoken", None)
    for name, value in changes.items():
        data[name] = value if isinstance(value, list) else [value]
    return data


def snapshot() -> dict:
    """Everything an escalation could change: accounts, their flags, groups and permissions, passwords."""
    return {
        "users": {
            u.username: (
                u.is_active,
                u.is_staff,
                u.is_superuser,
                u.email,
                u.password,
                sorted(g.name for g in u.groups.all()),
                sorted(p.codename for p in u.user_permissions.all()),
            )
            for u in User.objects.prefetch_related("groups", "user_permissions")
        },
        "groups": {
            g.name: sorted(p.codename for p in g.permissions.all())
            for g in Group.objects.prefetch_related("permissions")
        },
        "invites": sorted(InviteCode.objects.values_list("code", "group_id")),
    }


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


def post_action(client, action, users, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [u.pk for u in users], **extra}
    return client.post(reverse("admin:accounts_user_changelist"), data)


def change_url(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


# --- the cast ---------------------------------------------------------------------------------------------


@pytest.fixture
def people(make_staff, staff_roles):
    """A superuser, a teacher and a TA (both staff without superuser), a colleague teacher, students."""
    cast = {
        "root": User.objects.create_superuser(username="chief", password=PASSWORD, email="chief@example.edu.cn"),
        "teacher": make_staff("teacher-wang", "teacher"),
        "ta": make_staff("ta-li", "ta"),
        "colleague": make_staff("teacher-zhao", "teacher"),
        "student": User.objects.create_user(username="s2026001", password=PASSWORD, email="s1@example.edu.cn"),
        "other": User.objects.create_user(username="s2026002", password=PASSWORD),
        "class": Group.objects.create(name="经济学1班"),
        "roles": staff_roles,
    }
    cast["old_admin"] = User.objects.create_superuser(username="old-admin", password=PASSWORD)
    cast["old_admin"].is_active = False
    cast["old_admin"].save()
    return cast


@pytest.fixture(params=ACTORS)
def actor(request, people, client):
    """The client logged in as the teacher, then as the TA; `actor.user` is who that is."""
    client.force_login(people[request.param])
    client.user = people[request.param]
    client.role = request.param
    return client


# --- escalations: each must be refused and change nothing -----------------------------------------------------


def forged_flags_on_a_student(client, p):
    """The student's own change page (allowed), with is_staff, is_superuser and a permission forged in."""
    page = client.get(change_url(p["student"]))
    assert page.status_code == HTTPStatus.OK
    fields = page.context["adminform"].form.fields
    assert not set(roles.SUPERUSER_ONLY_FIELDS) & set(fields)  # the fields are not even offered
    perm = Permission.objects.get(codename="delete_user")
    data = form_data(page, is_staff="on", is_superuser="on", user_permissions=[str(perm.pk)])
    response = client.post(change_url(p["student"]), data)
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors  # saved, flags ignored


def make_self_superuser(client, p):
    data = {"username": client.user.username, "is_active": "on", "is_staff": "on", "is_superuser": "on"}
    assert client.post(change_url(client.user), data).status_code == HTTPStatus.FORBIDDEN


def add_self_to_teacher_role_on_own_page(client, p):
    data = {"username": client.user.username, "is_active": "on", "groups": [str(p["roles"]["teacher"].pk)]}
    assert client.post(change_url(client.user), data).status_code == HTTPStatus.FORBIDDEN


def add_a_student_to_the_teacher_role(client, p):
    page = client.get(change_url(p["student"]))
    response = client.post(change_url(p["student"]), form_data(page, groups=[str(p["roles"]["teacher"].pk)]))
    assert response.status_code == HTTPStatus.OK
    assert "groups" in response.context["adminform"].form.errors


def add_self_to_teacher_role_by_the_bulk_action(client, p):
    response = post_action(client, "add_to_group", [client.user], apply="1", group=p["roles"]["teacher"].pk)
    assert response.status_code == HTTPStatus.FOUND and "只有超级用户" in messages_of(response)


def add_a_student_to_the_teacher_role_by_the_bulk_action(client, p):
    response = post_action(client, "add_to_group", [p["student"]], apply="1", group=p["roles"]["teacher"].pk)
    assert response.status_code == HTTPStatus.OK and "group" in response.context["form"].errors


def name_the_teacher_role_as_a_new_group(client, p):
    response = post_action(client, "add_to_group", [p["student"]], apply="1", new_group="教师")
    assert response.status_code == HTTPStatus.OK and "new_group" in response.context["form"].errors


def give_self_a_permission(client, p):
    perm = Permission.objects.get(codename="delete_user")
    data = {"username": client.user.username, "is_active": "on", "user_permissions": [str(perm.pk)]}
    assert client.post(change_url(client.user), data).status_code == HTTPStatus.FORBIDDEN


def give_a_class_permissions(client, p):
    url = reverse("admin:auth_group_change", args=[p["class"].pk])
    perm = Permission.objects.get(codename="change_user")
    response = client.post(url, {"name": p["class"].name, "permissions": [str(perm.pk)]})
    # A teacher may rename a class (the name is posted unchanged), never give it permissions; a TA may not
    # change groups at all.
    assert response.status_code == (HTTPStatus.FOUND if client.role == "teacher" else HTTPStatus.FORBIDDEN)


def give_the_ta_role_more_permissions(client, p):
    ta = p["roles"]["ta"]
    perm = Permission.objects.get(codename="delete_user")
    response = client.post(
        reverse("admin:auth_group_change", args=[ta.pk]), {"name": ta.name, "permissions": [perm.pk]}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN


def rename_the_teacher_role(client, p):
    teacher = p["roles"]["teacher"]
    response = client.post(reverse("admin:auth_group_change", args=[teacher.pk]), {"name": "经济学2班"})
    assert response.status_code == HTTPStatus.FORBIDDEN


def delete_the_ta_role(client, p):
    url = reverse("admin:auth_group_delete", args=[p["roles"]["ta"].pk])
    assert client.post(url, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN


def delete_roles_in_a_bulk_delete_of_groups(client, p):
    data = {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [g.pk for g in p["roles"].values()]}
    response = client.post(reverse("admin:auth_group_changelist"), data)
    if client.role == "teacher":  # refused; without "post", Django's "you may not delete" page
        assert response.status_code == HTTPStatus.FORBIDDEN
        del data["post"]
        assert client.post(reverse("admin:auth_group_changelist"), data).context["perms_lacking"]
    else:  # TAs delete no group: the action is not even offered
        assert response.status_code == HTTPStatus.OK and "action_form" in response.context


def change_a_superusers_password_on_the_stock_page(client, p):
    url = reverse("admin:auth_user_password_change", args=[p["root"].pk])
    assert client.get(url).status_code == HTTPStatus.FORBIDDEN
    data = {"password1": "Taken-over-2026", "password2": "Taken-over-2026", "usable_password": "true"}
    assert client.post(url, data).status_code == HTTPStatus.FORBIDDEN


def change_a_colleagues_password_on_the_stock_page(client, p):
    url = reverse("admin:auth_user_password_change", args=[p["colleague"].pk])
    data = {"password1": "Taken-over-2026", "password2": "Taken-over-2026", "usable_password": "true"}
    assert client.post(url, data).status_code == HTTPStatus.FORBIDDEN


def temporary_password_for_a_colleague(client, p):
    response = post_action(client, "set_temporary_passwords", [p["colleague"], p["root"]], apply="1")
    assert response.status_code == HTTPStatus.FOUND and "只有超级用户" in messages_of(response)


def set_password_link_for_the_superuser(client, p):
    response = post_action(client, "issue_set_password_links", [p["root"]])
    assert response.status_code == HTTPStatus.FOUND and "只有超级用户" in messages_of(response)
    slips = client.get(reverse("admin:accounts_user_slips") + f"?ids={p['root'].pk},{p['colleague'].pk}")
    assert slips.context["slips"] == [] and set(slips.context["refused"]) == {p["root"], p["colleague"]}
    assert not setpassword.may_issue(client.user, p["root"])


def deactivate_the_superuser_by_the_action(client, p):
    response = post_action(client, "deactivate_users", [p["root"], p["colleague"]])
    assert "只有超级用户" in messages_of(response)


def deactivate_the_superuser_on_its_page(client, p):
    data = {"username": "chief", "email": "chief@example.edu.cn"}  # is_active left out: unticked
    assert client.post(change_url(p["root"]), data).status_code == HTTPStatus.FORBIDDEN


def reactivate_a_deactivated_admin(client, p):
    response = post_action(client, "reactivate_users", [p["old_admin"]])
    assert "只有超级用户" in messages_of(response)


def delete_the_superuser(client, p):
    url = reverse("admin:accounts_user_delete", args=[p["root"].pk])
    assert client.get(url).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN


def bulk_delete_staff(client, p):
    response = post_action(client, "delete_selected", [p["root"], p["colleague"]], post="yes")
    assert response.status_code in (HTTPStatus.FOUND, HTTPStatus.FORBIDDEN)


def edit_a_colleagues_email(client, p):
    data = {"username": p["colleague"].username, "email": "mine@example.edu.cn", "is_active": "on"}
    assert client.post(change_url(p["colleague"]), data).status_code == HTTPStatus.FORBIDDEN


def approve_a_staff_account(client, p):
    User.objects.filter(pk=p["old_admin"].pk).update(awaiting_approval=True)
    response = post_action(client, "approve_users", [p["old_admin"]])
    assert "只有超级用户" in messages_of(response)
    User.objects.filter(pk=p["old_admin"].pk).update(awaiting_approval=False)  # the snapshot's value again


def stop_the_superusers_server(client, p):
    assert client.post(reverse("staff_stop_server"), {"username": "chief"}).status_code == HTTPStatus.FORBIDDEN


def invite_code_into_the_teacher_role(client, p):
    url = reverse("admin:accounts_invitecode_add")
    data = {"code": "SNEAKY", "is_active": "on", "group": p["roles"]["teacher"].pk}
    response = client.post(url, data)
    if client.role == "ta":
        assert response.status_code == HTTPStatus.FORBIDDEN  # TAs do not make codes at all
    else:
        assert response.status_code == HTTPStatus.OK and "group" in response.context["adminform"].form.errors


def generate_codes_into_the_ta_role(client, p):
    url = reverse("admin:accounts_invitecode_generate")
    response = client.post(url, {"count": 2, "max_uses": 1, "group": p["roles"]["ta"].pk})
    if client.role == "ta":
        assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("admin:index")
    else:
        assert response.status_code == HTTPStatus.OK and "group" in response.context["form"].errors


def roster_into_the_teacher_role(client, p):
    upload = SimpleUploadedFile("roster.csv", b"username,group\nnewbie,\n", content_type="text/csv")
    response = client.post(reverse("admin:accounts_user_import"), {"file": upload, "group": "教师"})
    assert response.status_code == HTTPStatus.OK and "group" in response.context["form"].errors
    forged = client.post(
        reverse("admin:accounts_user_import"), {"confirm": "1", "text": "username\nnewbie\n", "group": "教师"}
    )
    assert forged.status_code == HTTPStatus.OK and "done" not in forged.context


def roster_row_naming_a_role(client, p):
    text = "username,group\ns2026001,助教\n"
    response = client.post(reverse("admin:accounts_user_import"), {"confirm": "1", "text": text, "group": ""})
    assert response.status_code == HTTPStatus.OK
    assert [row.status for row in response.context["rows"]] == ["skipped"]


def create_a_staff_user(client, p):
    page = client.get(reverse("admin:accounts_user_add"))
    assert not set(roles.SUPERUSER_ONLY_FIELDS) & set(page.context["adminform"].form.fields)
    data = form_data(
        page,
        username="new-admin",
        password1="Fresh-admin-2026",
        password2="Fresh-admin-2026",
        is_staff="on",
        is_superuser="on",
        groups=[str(p["roles"]["teacher"].pk)],
    )
    response = client.post(reverse("admin:accounts_user_add"), data)
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    made = User.objects.get(username="new-admin")
    assert (made.is_staff, made.is_superuser, list(made.groups.all())) == (False, False, [])
    made.delete()  # the rest of the snapshot must be as before


ESCALATIONS = [
    forged_flags_on_a_student,
    make_self_superuser,
    add_self_to_teacher_role_on_own_page,
    add_a_student_to_the_teacher_role,
    add_self_to_teacher_role_by_the_bulk_action,
    add_a_student_to_the_teacher_role_by_the_bulk_action,
    name_the_teacher_role_as_a_new_group,
    give_self_a_permission,
    give_a_class_permissions,
    give_the_ta_role_more_permissions,
    rename_the_teacher_role,
    delete_the_ta_role,
    delete_roles_in_a_bulk_delete_of_groups,
    change_a_superusers_password_on_the_stock_page,
    change_a_colleagues_password_on_the_stock_page,
    temporary_password_for_a_colleague,
    set_password_link_for_the_superuser,
    deactivate_the_superuser_by_the_action,
    deactivate_the_superuser_on_its_page,
    reactivate_a_deactivated_admin,
    delete_the_superuser,
    bulk_delete_staff,
    edit_a_colleagues_email,
    approve_a_staff_account,
    stop_the_superusers_server,
    invite_code_into_the_teacher_role,
    generate_codes_into_the_ta_role,
    roster_into_the_teacher_role,
    roster_row_naming_a_role,
    create_a_staff_user,
]


@pytest.mark.parametrize("attempt", ESCALATIONS, ids=lambda f: f.__name__)
def test_an_escalation_is_refused_and_changes_nothing(actor, people, attempt):
    before = snapshot()
    attempt(actor, people)
    assert snapshot() == before


# --- the same pages work for a superuser (so the refusals above are the roles, not broken pages) -------------


def test_a_superuser_still_makes_staff_assigns_roles_and_resets_a_staff_password(client, people):
    client.force_login(people["root"])
    page = client.get(change_url(people["student"]))
    assert set(roles.SUPERUSER_ONLY_FIELDS) <= set(page.context["adminform"].form.fields)
    data = form_data(page, is_staff="on", groups=[str(people["roles"]["ta"].pk)])
    assert client.post(change_url(people["student"]), data).status_code == HTTPStatus.FOUND
    promoted = User.objects.get(pk=people["student"].pk)
    assert promoted.is_staff and list(promoted.groups.all()) == [people["roles"]["ta"]]
    url = reverse("admin:auth_user_password_change", args=[people["colleague"].pk])
    data = {"password1": "New-colleague-2026", "password2": "New-colleague-2026", "usable_password": "true"}
    assert client.post(url, data).status_code == HTTPStatus.FOUND
    assert User.objects.get(pk=people["colleague"].pk).check_password("New-colleague-2026")


# --- daily work ---------------------------------------------------------------------------------------------


def test_staff_edit_a_students_name_email_and_class(actor, people):
    page = actor.get(change_url(people["student"]))
    group_choices = {g.name for g in page.context["adminform"].form.fields["groups"].queryset}
    assert group_choices == {"经济学1班"}  # classes only, never a role
    data = form_data(page, first_name="小明", email="xm@example.edu.cn", groups=[str(people["class"].pk)])
    assert actor.post(change_url(people["student"]), data).status_code == HTTPStatus.FOUND
    student = User.objects.get(pk=people["student"].pk)
    assert (student.first_name, student.email, [g.name for g in student.groups.all()]) == (
        "小明",
        "xm@example.edu.cn",
        ["经济学1班"],
    )


def test_staff_reset_a_students_password_on_the_password_page(actor, people):
    url = reverse("admin:auth_user_password_change", args=[people["student"].pk])
    data = {"password1": "Class-reset-2026", "password2": "Class-reset-2026", "usable_password": "true"}
    assert actor.post(url, data).status_code == HTTPStatus.FOUND
    assert User.objects.get(pk=people["student"].pk).check_password("Class-reset-2026")


def test_staff_give_students_temporary_passwords_and_slips(actor, people):
    done = post_action(actor, "set_temporary_passwords", [people["student"], people["other"]], apply="1")
    assert done.status_code == HTTPStatus.OK and len(done.context["slips"]) == 2
    slips = actor.get(reverse("admin:accounts_user_slips") + f"?ids={people['student'].pk}")
    assert [s["user"] for s in slips.context["slips"]] == [people["student"]]


def test_a_bulk_action_on_a_mixed_selection_changes_the_students_only(actor, people):
    response = post_action(
        actor, "add_to_group", [people["student"], people["colleague"]], apply="1", group=people["class"].pk
    )
    assert "未包含 1 个工作人员账号" in messages_of(response)
    assert list(people["class"].user_set.all()) == [people["student"]]


def test_staff_import_a_roster(actor, people):
    text = "username,name,group\ns2026100,王伟,经济学2班\n"
    response = actor.post(reverse("admin:accounts_user_import"), {"confirm": "1", "text": text, "group": ""})
    assert response.status_code == HTTPStatus.OK and response.context["done"]
    assert User.objects.get(username="s2026100").groups.get().name == "经济学2班"


def test_staff_see_the_usage_page_and_may_stop_students_servers_only(actor, people):
    page = actor.get(reverse("staff_usage"))
    assert page.status_code == HTTPStatus.OK
    may_stop = {row["user"].username: row["may_stop"] for row in page.context["rows"]}
    assert may_stop["s2026001"] and not may_stop["chief"] and not may_stop["teacher-zhao"]
    response = actor.post(reverse("staff_stop_server"), {"username": "s2026001"})
    assert response.status_code == HTTPStatus.FOUND  # asked the hub (not running here: an error message)


def test_staff_see_a_roles_permissions_but_no_permissions_field(actor, people):
    page = actor.get(reverse("admin:auth_group_change", args=[people["class"].pk]))
    assert page.status_code == HTTPStatus.OK and "permissions" not in page.context["adminform"].form.fields
    role = actor.get(reverse("admin:auth_group_change", args=[people["roles"]["ta"].pk]))
    assert role.status_code == HTTPStatus.OK and "permissions" not in role.context["adminform"].form.fields
    assert "Can view user" in role.content.decode()  # what a TA may do, read-only


TEACHER_ONLY = [
    ("delete a student", lambda c, p: c.post(reverse("admin:accounts_user_delete", args=[p["other"].pk]), {"post": "yes"})),
    ("add an invite code", lambda c, p: c.post(reverse("admin:accounts_invitecode_add"), {"code": "NEW-2026", "is_active": "on"})),
    ("write an announcement", lambda c, p: c.post(reverse("admin:staff_announcement_add"), {"message": "下周停课", "level": "info", "is_active": "on"})),
    ("rename a class", lambda c, p: c.post(reverse("admin:auth_group_change", args=[p["class"].pk]), {"name": "经济学一班"})),
]  # fmt: skip


@pytest.mark.parametrize("what", TEACHER_ONLY, ids=[name for name, _ in TEACHER_ONLY])
def test_teachers_may_and_tas_may_not(actor, people, what):
    _, do = what
    before = snapshot(), Announcement.objects.count()
    response = do(actor, people)
    if actor.role == "teacher":
        assert response.status_code == HTTPStatus.FOUND
        assert (snapshot(), Announcement.objects.count()) != before
    else:
        assert response.status_code == HTTPStatus.FORBIDDEN
        assert (snapshot(), Announcement.objects.count()) == before


def test_the_usage_page_and_stop_button_need_the_permission(client, people):
    plain = User.objects.create_user(username="helper", password=PASSWORD, is_staff=True)
    client.force_login(plain)
    assert client.get(reverse("staff_usage")).status_code == HTTPStatus.FORBIDDEN
    assert client.post(reverse("staff_stop_server"), {"username": "s2026001"}).status_code == HTTPStatus.FORBIDDEN
    assert reverse("staff_usage") not in client.get(reverse("admin:index")).content.decode()


# --- the roles themselves -------------------------------------------------------------------------------------


def codenames(group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_bootstrap_creates_the_two_roles_and_running_it_again_changes_nothing(capsys):
    call_command("bootstrap")
    teacher = StaffRole.objects.get(key="teacher").group
    ta = StaffRole.objects.get(key="ta").group
    assert (teacher.name, ta.name) == ("教师", "助教")
    assert {
        "accounts.delete_user",
        "accounts.add_invitecode",
        "auth.change_group",
        "staff.add_announcement",
    } <= codenames(teacher)
    assert "accounts.hub_admin" in codenames(teacher)
    course = {c for c in codenames(ta) if c.startswith("course.")}
    # Course work: TAs see it all and change none of it (every model of the course app, view only).
    assert course and all(c.startswith("course.view_") for c in course)
    assert {c for c in codenames(teacher) if c.startswith("course.")} > course
    assert codenames(ta) - course == {
        "accounts.view_user",
        "accounts.add_user",
        "accounts.change_user",
        "accounts.view_usage",
        "accounts.stop_server",
        "accounts.view_invitecode",
        "accounts.view_inviteredemption",
        "auth.view_group",
        "auth.add_group",
        "staff.view_announcement",
    }
    assert not {c for c in codenames(teacher) if c.startswith(("auth.", "oauth2_provider.", "admin."))} - {
        "auth.add_group",
        "auth.change_group",
        "auth.delete_group",
        "auth.view_group",
    }
    before = {g.name: codenames(g) for g in (teacher, ta)}
    capsys.readouterr()
    call_command("bootstrap")
    assert "unchanged" in capsys.readouterr().out
    assert {g.name: codenames(g) for g in Group.objects.filter(staff_role__isnull=False)} == before


def test_a_course_model_added_later_joins_the_roles_at_the_next_bootstrap(staff_roles):
    later = ContentType.objects.create(app_label="course", model="rubric")
    for action in ("view", "change"):
        Permission.objects.create(content_type=later, codename=f"{action}_rubric", name=f"Can {action} rubric")
    roles.ensure_roles()
    assert {"course.view_rubric", "course.change_rubric"} <= codenames(staff_roles["teacher"])
    assert "course.view_rubric" in codenames(staff_roles["ta"])
    assert "course.change_rubric" not in codenames(staff_roles["ta"])


def test_bootstrap_takes_no_permission_from_a_person(people):
    old_hand = User.objects.create_user(username="old-hand", password=PASSWORD, is_staff=True)
    old_hand.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "delete_invitecode"]))
    call_command("bootstrap")
    assert {p.codename for p in User.objects.get(pk=old_hand.pk).user_permissions.all()} == {
        "change_user",
        "delete_invitecode",
    }


def test_bootstrap_adopts_a_staff_only_group_of_that_name_and_refuses_a_class(db):
    staff_group = Group.objects.create(name="教师")
    staff_group.user_set.add(User.objects.create_user(username="wang", password=PASSWORD, is_staff=True))
    class_group = Group.objects.create(name="助教")
    class_group.user_set.add(User.objects.create_user(username="s2026009", password=PASSWORD))
    with pytest.raises(CommandError, match=r"'助教' has members who are not staff \(s2026009\).*rename it"):
        call_command("bootstrap")
    assert not StaffRole.objects.exists()  # nothing half-done
    class_group.name = "助教班"
    class_group.save()
    call_command("bootstrap")
    assert StaffRole.objects.get(key="teacher").group == staff_group
    assert StaffRole.objects.get(key="ta").group.name == "助教" != class_group.name


def test_the_upgrade_keeps_what_existing_staff_could_do(db):
    """accounts/migrations/0005: staff made before roles keep the usage page, the stop button and hub admin."""
    import importlib

    migration = importlib.import_module("accounts.migrations.0005_roles")
    old_hand = User.objects.create_user(username="old-hand", password=PASSWORD, is_staff=True)
    User.objects.create_user(username="s2026009", password=PASSWORD)
    migration.keep_what_staff_could_do(apps, None)
    old_hand = User.objects.get(pk=old_hand.pk)
    assert old_hand.has_perms(["accounts.view_usage", "accounts.stop_server", "accounts.hub_admin"])
    assert roles.is_hub_admin(old_hand)
    assert not User.objects.get(username="s2026009").user_permissions.exists()


# --- a role is never a class ----------------------------------------------------------------------------------


def test_an_invite_code_cannot_name_a_role(staff_roles):
    invite = InviteCode(code="ROLE-2026", group=staff_roles["teacher"])
    with pytest.raises(ValidationError) as caught:
        invite.full_clean()
    assert "group" in caught.value.message_dict


def test_commands_refuse_a_role_as_a_class(staff_roles, tmp_path):
    with pytest.raises(CommandError, match="staff role"):
        call_command("create_invite", "--group", "教师")
    roster = tmp_path / "roster.csv"
    roster.write_text("username\ns2026050\n", encoding="utf-8")
    with pytest.raises(CommandError, match="“助教”是工作人员角色"):  # the roster's own (translated) message
        call_command("import_roster", str(roster), "--group", "助教")
    assert not User.objects.filter(username="s2026050").exists()


def test_class_groups_leave_the_roles_out(staff_roles):
    Group.objects.create(name="class-a")
    assert set(roles.class_groups().values_list("name", flat=True)) == {"class-a"}
    assert set(roles.role_groups().values_list("name", flat=True)) == {"教师", "助教"}
