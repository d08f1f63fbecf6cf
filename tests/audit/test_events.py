"""Each kind of the record, through the page, admin action or command that does it: who did it, to whom, when,
from where, and the details (never the secret itself)."""

from __future__ import annotations

import csv
import io
import json
import re
from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts import setpassword
from audit.kinds import Kind
from audit.models import Event
from audit.records import record
from tests.accounts.test_roles import form_data
from tests.accounts.test_set_password import choose_password
from tests.audit.conftest import entries, only
from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
SIGNUP = reverse("signup")
NEW_PASSWORD = "Panel-wave-2026-new"
BROWSER = {"REMOTE_ADDR": "198.51.100.7", "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) CFPS-test/1.0"}


def as_text(event: Event) -> str:
    """Everything an entry holds, as one string (to look for what must not be there)."""
    return json.dumps(
        [event.kind, event.actor_name, event.subject_name, event.address, event.device, event.detail],
        ensure_ascii=False,
        default=str,
    )


def recent(event: Event) -> None:
    assert abs((timezone.now() - event.time).total_seconds()) < 60


def change_url(user) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


def post_action(client, action, users, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [u.pk for u in users], **extra}
    return client.post(reverse("admin:accounts_user_changelist"), data)


def roster_upload(rows) -> SimpleUploadedFile:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return SimpleUploadedFile("名单.csv", out.getvalue().encode("gb18030"), content_type="text/csv")


ROSTER = [
    ["用户名", "姓名", "班级"],
    ["zhangsan", "张三", "经济学1班"],
    ["lisi", "李四", "经济学1班"],
    ["张三丰", "", ""],
]


def import_in_admin(client, rows=ROSTER):
    preview = client.post(reverse("admin:accounts_user_import"), {"file": roster_upload(rows), "group": ""})
    text = preview.context["confirm"].initial["text"]
    return client.post(reverse("admin:accounts_user_import"), {"confirm": "1", "text": text, "group": ""})


# --- logins --------------------------------------------------------------------------------------------------
def test_a_login_is_recorded_with_who_when_where_and_which_browser(student):
    assert Client(**BROWSER).post(LOGIN, {"username": "student9", "password": PASSWORD}).status_code == 302
    event = only(Kind.LOGIN)
    assert (event.actor, event.subject, event.actor_name, event.subject_name) == (
        student,
        student,
        "student9",
        "student9",
    )
    assert event.address == "198.51.100.7" and event.device == BROWSER["HTTP_USER_AGENT"]
    assert event.detail == {"via": "login"}
    recent(event)


def test_the_address_recorded_is_the_one_our_proxy_wrote_never_a_forged_header(student, settings):
    settings.PROXY_SECRET = "proxy-secret-for-the-record-tests-0123456789"
    credentials = {"username": "student9", "password": PASSWORD}
    Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6").post(LOGIN, credentials)
    proxied = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9", "HTTP_X_CFPS_PROXY": settings.PROXY_SECRET}
    Client(REMOTE_ADDR="127.0.0.1", **proxied).post(LOGIN, credentials)
    assert [event.address for event in entries(Kind.LOGIN)] == ["127.0.0.1", "203.0.113.9"]


def test_a_failed_login_names_the_account_and_never_keeps_an_unknown_name(student):
    Client(**BROWSER).post(LOGIN, {"username": "Student9", "password": "wrong"})
    Client(**BROWSER).post(LOGIN, {"username": PASSWORD, "password": "student9"})  # the two boxes swapped
    known, unknown = entries(Kind.LOGIN_FAILED)
    assert known.subject == student and known.actor is None and known.detail == {"active": True, "via": "login"}
    assert unknown.subject is None and unknown.detail == {"unknown_name": True, "via": "login"}
    assert unknown.address == "198.51.100.7"
    assert PASSWORD not in as_text(unknown) and PASSWORD.lower() not in as_text(unknown)


def test_a_students_right_password_at_the_admin_login_is_a_failed_login(student):
    Client(**BROWSER).post(reverse("admin:login"), {"username": "student9", "password": PASSWORD, "next": "/admin/"})
    event = only(Kind.LOGIN_FAILED)
    assert event.subject == student and event.detail == {"active": True, "not_staff": True, "via": "admin_login"}
    assert not entries(Kind.LOGIN)


def test_a_lockout_is_recorded_once_per_window_not_once_per_refused_attempt(student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "2/h"
    browser = Client(**BROWSER)
    for _ in range(2):
        browser.post(LOGIN, {"username": "student9", "password": "wrong"})
    codes = [browser.post(LOGIN, {"username": "student9", "password": PASSWORD}).status_code for _ in range(5)]
    assert codes == [HTTPStatus.TOO_MANY_REQUESTS] * 5
    event = only(Kind.LOCKED_OUT)
    assert event.subject == student and event.address == "198.51.100.7"
    assert event.detail["what"] == "login" and event.detail["limit"] == "LOGIN_USER_FAILURE_LIMIT"
    assert 3500 < event.detail["seconds"] <= 3600
    # Refused before the password was checked: only the two real failures are failed logins.
    assert len(entries(Kind.LOGIN_FAILED)) == 2 and not entries(Kind.LOGIN)


def test_a_sign_up_lockout_is_recorded_for_the_address(signup_data, settings):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "2/h"
    browser = Client(**BROWSER)
    codes = [browser.post(SIGNUP, signup_data(f"guess{i}", invite_code=f"BAD-{i}")).status_code for i in range(4)]
    assert codes == [HTTPStatus.OK] * 2 + [HTTPStatus.TOO_MANY_REQUESTS] * 2
    event = only(Kind.LOCKED_OUT)
    assert event.subject is None and event.detail["what"] == "sign-up" and event.address == "198.51.100.7"
    assert "BAD-" not in as_text(event)


def test_a_logout_is_recorded(student):
    browser = Client(**BROWSER)
    browser.post(LOGIN, {"username": "student9", "password": PASSWORD})
    browser.post(reverse("logout"))
    event = only(Kind.LOGOUT)
    assert event.actor == student == event.subject and event.detail == {"via": "logout"}


def test_a_sign_up_is_recorded_with_its_invite_but_never_the_code(signup_data, invite):
    assert Client(**BROWSER).post(SIGNUP, signup_data("newstudent")).status_code == HTTPStatus.FOUND
    user = User.objects.get(username="newstudent")
    event = only(Kind.SIGNED_UP)
    assert event.actor == user == event.subject and event.address == "198.51.100.7"
    assert event.detail == {"invite": invite.pk, "needs_approval": False, "via": "signup"}
    assert invite.code not in as_text(event)
    assert only(Kind.LOGIN, subject=user).detail["via"] == "signup"


# --- passwords -----------------------------------------------------------------------------------------------
def test_a_password_change_on_the_portal_is_recorded_as_the_students_own(client, student):
    client.force_login(student)
    data = {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert client.post(reverse("password_change"), data).status_code == HTTPStatus.FOUND
    event = only(Kind.PASSWORD_CHANGED)
    assert event.actor == student == event.subject and event.detail == {"via": "password_change"}
    assert NEW_PASSWORD not in as_text(event)


def test_a_password_set_by_staff_on_the_admin_page_names_the_staff_member(superuser_client, staff, student):
    url = reverse("admin:auth_user_password_change", args=[student.pk])
    data = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    assert superuser_client.post(url, data).status_code == HTTPStatus.FOUND
    event = only(Kind.PASSWORD_CHANGED)
    assert event.actor == staff and event.subject == student
    assert event.detail == {"via": "admin:auth_user_password_change"}


def test_a_reset_mail_and_its_use_are_recorded_without_the_address_typed_or_the_link(client, inbox, settings):
    lihua = User.objects.create_user(username="lihua", password=PASSWORD, email="lihua@example.edu.cn")
    client.post(reverse("password_reset"), {"email": " LiHua@Example.edu.cn "})
    client.post(reverse("password_reset"), {"email": "nobody@example.edu.cn"})
    asked, unknown = entries(Kind.PASSWORD_RESET_REQUESTED)
    assert asked.subject == lihua and asked.actor is None and asked.detail == {"sent": True, "via": "password_reset"}
    assert unknown.subject is None and unknown.detail == {"matched": False, "sent": True, "via": "password_reset"}
    [(_, content)] = inbox.messages
    link = re.search(r"(\S+/accounts/reset/\S+/)", content.replace("=\n", "")).group(1)
    form = client.get(link.removeprefix(settings.PUBLIC_URL), follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    done = only(Kind.PASSWORD_RESET_DONE)
    assert done.actor == lihua == done.subject and done.detail == {"via": "password_reset_confirm"}
    assert not entries(Kind.PASSWORD_CHANGED)
    token = link.rstrip("/").rsplit("/", 1)[1]
    for event in Event.objects.all():
        assert token not in as_text(event) and "nobody@" not in as_text(event) and "lihua@" not in as_text(event)


def test_set_password_links_on_slips_are_recorded_per_student_with_who_printed_them(superuser_client, staff):
    students = [User.objects.create_user(username=f"pupil{i}") for i in range(3)]
    ids = ",".join(str(user.pk) for user in students)
    page = superuser_client.get(reverse("admin:accounts_user_slips") + f"?ids={ids}")
    issued = entries(Kind.SET_PASSWORD_LINK_ISSUED)
    assert [event.subject for event in issued] == students
    assert {event.actor for event in issued} == {staff}
    assert all("valid_until" in event.detail for event in issued)
    for slip, event in zip(page.context["slips"], issued, strict=True):
        assert slip["link"].rsplit("/", 2)[-2] not in as_text(event)


def test_links_written_by_the_import_command_are_recorded_without_an_actor(tmp_path):
    roster = tmp_path / "class.csv"
    roster.write_text("username,name\nwangwu,王五\nzhaoliu,赵六\n", encoding="utf-8")
    call_command("import_roster", str(roster), links=tmp_path / "links.csv", verbosity=0)
    issued = entries(Kind.SET_PASSWORD_LINK_ISSUED)
    assert sorted(event.subject_name for event in issued) == ["wangwu", "zhaoliu"]
    assert {event.actor for event in issued} == {None}
    links = (tmp_path / "links.csv").read_text(encoding="utf-8-sig")
    for event in issued:
        assert not any(line.split(",")[2] in as_text(event) for line in links.splitlines()[1:])


def test_a_password_set_with_a_link_is_recorded_as_the_students_own(client):
    pupil = User(username="xiaohong")
    pupil.set_unusable_password()
    pupil.save()
    path = setpassword.link_path(pupil)
    assert choose_password(client, path, NEW_PASSWORD).status_code == HTTPStatus.FOUND
    used = only(Kind.SET_PASSWORD_LINK_USED)
    assert used.actor == pupil == used.subject and used.detail == {"via": "set_password"}
    assert only(Kind.LOGIN).detail["via"] == "set_password"
    assert not entries(Kind.PASSWORD_CHANGED)
    assert path.rstrip("/").rsplit("/", 1)[1] not in as_text(used)


def test_temporary_passwords_are_recorded_per_student_and_never_the_password(superuser_client, staff):
    students = [User.objects.create_user(username=f"pupil{i}", password=PASSWORD) for i in range(2)]
    page = post_action(superuser_client, "set_temporary_passwords", students, apply="1")
    events = entries(Kind.TEMPORARY_PASSWORD_SET)
    assert [event.subject for event in events] == students and {event.actor for event in events} == {staff}
    for slip in page.context["slips"]:
        assert all(slip["password"] not in as_text(event) for event in Event.objects.all())
    assert not entries(Kind.PASSWORD_CHANGED)


# --- staff, roles, permissions ---------------------------------------------------------------------------------
def test_making_someone_staff_with_a_role_and_taking_it_back_is_recorded(superuser_client, staff, staff_roles, student):
    page = superuser_client.get(change_url(student))
    ta = staff_roles["ta"]
    data = form_data(page, is_staff="on", groups=[str(ta.pk)])
    assert superuser_client.post(change_url(student), data).status_code == HTTPStatus.FOUND
    staffed = only(Kind.STAFF_CHANGED, subject=student)
    assert staffed.actor == staff and staffed.detail["is_staff"] is True
    assert only(Kind.ROLE_CHANGED).detail["added"] == [ta.name]
    page = superuser_client.get(change_url(student))
    superuser_client.post(change_url(student), form_data(page, groups=[]))
    removed = entries(Kind.ROLE_CHANGED)[-1]
    assert removed.subject == student and removed.actor == staff and removed.detail["removed"] == [ta.name]


def test_joining_a_class_is_not_a_role_change(superuser_client, student):
    page = superuser_client.get(change_url(student))
    superuser_client.post(change_url(student), form_data(page, groups=[str(Group.objects.create(name="经济学1班").pk)]))
    assert not entries(Kind.ROLE_CHANGED)


def test_superuser_status_given_and_taken_is_recorded(superuser_client, staff, student):
    for flag in ("on", None):
        page = superuser_client.get(change_url(student))
        data = form_data(page, is_staff="on")
        data.pop("is_superuser", None)
        if flag:
            data["is_superuser"] = [flag]
        superuser_client.post(change_url(student), data)
    given, taken = entries(Kind.SUPERUSER_CHANGED, subject=student)
    assert (given.detail["is_superuser"], taken.detail["is_superuser"]) == (True, False)
    assert given.actor == taken.actor == staff


def test_a_new_superuser_is_recorded(db):
    call_command("createsuperuser", username="rootish", email="", interactive=False, verbosity=0)
    event = only(Kind.SUPERUSER_CHANGED, subject_name="rootish")
    assert event.detail == {"is_superuser": True, "new_account": True}
    assert only(Kind.STAFF_CHANGED, subject_name="rootish").detail["new_account"] is True


def test_permissions_given_to_an_account_and_to_a_group_are_recorded(superuser_client, staff, student):
    usage = Permission.objects.get(codename="view_usage")
    page = superuser_client.get(change_url(student))
    superuser_client.post(change_url(student), form_data(page, user_permissions=[str(usage.pk)]))
    event = only(Kind.PERMISSIONS_CHANGED, subject=student)
    assert event.actor == staff and event.detail["added"] == ["accounts.view_usage"]
    group = Group.objects.create(name="tutors")
    url = reverse("admin:auth_group_change", args=[group.pk])
    superuser_client.post(url, form_data(superuser_client.get(url), permissions=[str(usage.pk)]))
    event = only(Kind.PERMISSIONS_CHANGED, subject=None)
    assert (
        event.actor == staff and event.detail["group"] == "tutors" and event.detail["added"] == ["accounts.view_usage"]
    )


def test_bootstrap_is_recorded_without_an_actor_roles_codes_and_the_admin(settings):
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD, settings.INVITE_CODES = (
        "cfps-admin",
        "Bootstrap-2026-x",
        ["WEEK1"],
    )
    call_command("bootstrap", verbosity=0)
    roles = entries(Kind.PERMISSIONS_CHANGED)
    assert sorted(event.detail["group"] for event in roles) == ["助教", "教师"]
    assert {event.actor for event in roles} == {None}
    made = only(Kind.INVITES_CREATED)
    assert made.detail["count"] == 1 and "WEEK1" not in as_text(made)
    assert only(Kind.SUPERUSER_CHANGED).subject_name == "cfps-admin"
    call_command("bootstrap", verbosity=0)  # nothing changes the second time, nothing more is recorded
    assert len(entries(Kind.PERMISSIONS_CHANGED)) == 2 and len(entries(Kind.INVITES_CREATED)) == 1


# --- the account's life ---------------------------------------------------------------------------------------
def test_an_account_created_in_the_admin_is_recorded(superuser_client, staff):
    page = superuser_client.get(reverse("admin:accounts_user_add"))
    data = form_data(page, username="newbie", password1=NEW_PASSWORD, password2=NEW_PASSWORD, usable_password="true")
    assert superuser_client.post(reverse("admin:accounts_user_add"), data).status_code == HTTPStatus.FOUND
    event = only(Kind.ACCOUNT_CREATED)
    assert event.actor == staff and event.subject == User.objects.get(username="newbie")


def test_deactivation_and_reactivation_in_the_admin_are_recorded_with_who(superuser_client, staff, student):
    post_action(superuser_client, "deactivate_users", [student], apply="1")
    post_action(superuser_client, "reactivate_users", [student])
    off, on = only(Kind.DEACTIVATED), only(Kind.REACTIVATED)
    assert off.actor == on.actor == staff and off.subject == on.subject == student
    assert off.detail == {"via": "admin:accounts_user_changelist"}
    assert off.time <= on.time


def test_deactivation_by_the_command_is_recorded_without_an_actor(student):
    call_command("deactivate_users", "student9", verbosity=0)
    event = only(Kind.DEACTIVATED)
    assert event.actor is None and event.subject == student and event.address is None


def test_approval_is_recorded_as_approval_not_as_reactivation(superuser_client, staff, make_invite, signup_data):
    code = make_invite(code="NEEDS-OK", needs_approval=True)
    Client().post(SIGNUP, signup_data("waiting1", invite_code=code.code))
    waiting = User.objects.get(username="waiting1")
    post_action(superuser_client, "approve_users", [waiting])
    assert only(Kind.APPROVED).subject == waiting and not entries(Kind.REACTIVATED)
    assert only(Kind.SIGNED_UP).detail["needs_approval"] is True


def test_a_rename_is_recorded_with_the_old_name(superuser_client, staff, student):
    page = superuser_client.get(change_url(student))
    superuser_client.post(change_url(student), form_data(page, username="student10"))
    event = only(Kind.RENAMED)
    assert event.subject == student and event.subject_name == "student10" and event.detail["old_name"] == "student9"


def test_a_deletion_keeps_the_name_and_the_accounts_history(superuser_client, staff, student):
    Client().post(LOGIN, {"username": "student9", "password": PASSWORD})
    url = reverse("admin:accounts_user_delete", args=[student.pk])
    assert superuser_client.post(url, {"post": "yes"}).status_code == HTTPStatus.FOUND
    deleted = only(Kind.DELETED)
    assert deleted.actor == staff and deleted.subject is None and deleted.subject_name == "student9"
    login = only(Kind.LOGIN, subject_name="student9")
    assert login.subject is None and login.actor is None  # the account is gone, its history stays readable
    assert Event.objects.filter(subject_name="student9").count() == 2


# --- classes and codes -----------------------------------------------------------------------------------------
def test_a_roster_import_in_the_admin_is_recorded_with_counts_and_who_but_not_its_preview(superuser_client, staff):
    preview = superuser_client.post(reverse("admin:accounts_user_import"), {"file": roster_upload(ROSTER)})
    assert preview.status_code == HTTPStatus.OK and not entries(Kind.ROSTER_IMPORTED)
    import_in_admin(superuser_client)
    event = only(Kind.ROSTER_IMPORTED)
    assert event.actor == staff and event.subject is None
    assert {k: event.detail[k] for k in ("rows", "created", "updated", "unchanged", "skipped")} == {
        "rows": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 1,
    }
    assert event.detail["groups_created"] == ["经济学1班"] and "张三" not in as_text(event)
    # The accounts it made are not each an entry of their own: the import is one.
    assert not entries(Kind.ACCOUNT_CREATED)


def test_a_roster_import_by_the_command_is_recorded_without_an_actor(tmp_path):
    roster = tmp_path / "class.csv"
    roster.write_text("username,name\nwangwu,王五\n", encoding="utf-8")
    call_command("import_roster", str(roster), "--dry-run", verbosity=0)
    assert not entries(Kind.ROSTER_IMPORTED)
    call_command("import_roster", str(roster), group="2026春", verbosity=0)
    event = only(Kind.ROSTER_IMPORTED)
    assert event.actor is None and event.detail["created"] == 1 and event.detail["group"] == "2026春"


def test_invite_codes_made_in_the_admin_are_recorded_without_the_codes(superuser_client, staff):
    team = Group.objects.create(name="class-b")
    data = {"count": 3, "max_uses": 1, "group": team.pk, "note": "week 1", "expires_at": ""}
    superuser_client.post(reverse("admin:accounts_invitecode_generate"), data)
    batch = only(Kind.INVITES_CREATED)
    assert batch.actor == staff and batch.detail["count"] == 3 and batch.detail["group"] == "class-b"
    assert batch.detail["max_uses"] == 1 and batch.detail["note"] == "week 1" and len(batch.detail["ids"]) == 3
    page = superuser_client.get(reverse("admin:accounts_invitecode_add"))
    superuser_client.post(reverse("admin:accounts_invitecode_add"), form_data(page, code="HANDMADE-1"))
    single = entries(Kind.INVITES_CREATED)[-1]
    assert single.actor == staff and single.detail["count"] == 1
    from accounts.models import InviteCode

    for code in InviteCode.objects.values_list("code", flat=True):
        assert all(code not in as_text(event) for event in Event.objects.all())


def test_invite_codes_made_by_the_command_are_recorded(db):
    call_command("create_invite", count=2, max_uses=30, note="lab", verbosity=0)
    event = only(Kind.INVITES_CREATED)
    assert event.actor is None and event.detail["count"] == 2 and event.detail["max_uses"] == 30


# --- the course and the servers -----------------------------------------------------------------------------------
def test_a_hand_out_is_recorded_when_queued_by_staff_and_when_the_worker_finishes_it(
    superuser_client, staff, make_home, run_worker
):
    from tests.course.test_jobs import NOTEBOOK, admin_post, zip_of

    group = Group.objects.create(name="class-a")
    pupil = User.objects.create_user(username="pupil1", password=PASSWORD)
    pupil.groups.add(group)
    make_home("pupil1")
    upload = SimpleUploadedFile("week2.zip", zip_of({"week2/intro.ipynb": NOTEBOOK}), content_type="application/zip")
    response = admin_post(superuser_client, "material", {"groups": [str(group.pk)]}, files=[upload])
    assert response.status_code == HTTPStatus.FOUND
    queued = only(Kind.COURSE_JOB_QUEUED)
    assert queued.actor == staff and queued.detail["job_kind"] == "hand_out" and queued.detail["handout"] == "第二周"
    run_worker()
    finished = only(Kind.COURSE_JOB_FINISHED)
    assert finished.detail["job"] == queued.detail["job"] and finished.detail["status"] == "done"
    assert finished.detail["items_done"] == 1 and finished.actor is None


def test_the_warmup_kind_is_ready_for_the_warmup_feature(staff):
    """Warm-ups are a feature still to come: its entries need only this kind and a call to record()."""
    event = record(Kind.WARMUP, actor=staff, servers=30)
    with translation.override("zh-hans"):
        assert Event.objects.get(pk=event.pk).kind_label == "预热服务器"
