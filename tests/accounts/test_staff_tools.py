"""The admin's class tools: roster import (upload, preview, confirm), printable slips, bulk actions, group
members, who used an invite code."""

import csv
from http import HTTPStatus
from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import InviteCode, InviteRedemption

User = get_user_model()
pytestmark = pytest.mark.django_db


def changelist():
    return reverse("admin:accounts_user_changelist")


def roster_file(rows, encoding="gb18030", name="名单.csv"):
    out = StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return SimpleUploadedFile(name, out.getvalue().encode(encoding), content_type="text/csv")


ROSTER = [
    ["用户名", "姓名", "邮箱", "班级"],
    ["zhangsan", "张三", "", "经济学1班"],
    ["张三丰", "张三丰", "", "经济学1班"],  # invalid username
    ["lisi", "李四", "", "经济学1班"],
    ["ZhangSan", "张三", "", "经济学1班"],  # duplicate of line 2
]


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_roster_preview_shows_each_row_and_saves_nothing(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_import"), {"file": roster_file(ROSTER), "group": "2026春"}
    )
    assert response.status_code == HTTPStatus.OK
    report = response.context["report"]
    assert [(r.line, r.status, r.code) for r in report.rows] == [
        (2, "created", ""),
        (3, "skipped", "invalid_username"),
        (4, "created", ""),
        (5, "skipped", "duplicate"),
    ]
    assert report.dry_run and not User.objects.exclude(pk=response.context["user"].pk).exists()
    assert not Group.objects.exists()


def test_confirming_the_preview_imports_it_and_offers_the_slips(admin_client):
    preview = admin_client.post(reverse("admin:accounts_user_import"), {"file": roster_file(ROSTER)})
    text = preview.context["confirm"].initial["text"]
    done = admin_client.post(reverse("admin:accounts_user_import"), {"confirm": "1", "text": text, "group": ""})
    assert done.status_code == HTTPStatus.OK and done.context["done"]
    assert sorted(Group.objects.get(name="经济学1班").user_set.values_list("username", flat=True)) == [
        "lisi",
        "zhangsan",
    ]
    slips = admin_client.get(done.context["slips_url"])
    assert slips.status_code == HTTPStatus.OK
    assert [s["user"].username for s in slips.context["slips"]] == ["zhangsan", "lisi"]
    page = slips.content.decode()
    assert "/accounts/set-password/" in page and "<svg" in page and "@media print" not in page  # CSS is a file
    # A second confirm of the same file changes nothing.
    again = admin_client.post(reverse("admin:accounts_user_import"), {"confirm": "1", "text": text, "group": ""})
    assert not again.context["report"].changed


def test_an_unreadable_upload_gets_a_message_beside_the_field(admin_client):
    bad = SimpleUploadedFile("x.csv", b"name,email\nx,y\n")
    response = admin_client.post(reverse("admin:accounts_user_import"), {"file": bad})
    assert response.status_code == HTTPStatus.OK
    assert "username" in " ".join(response.context["form"].errors["file"])


def test_the_user_list_links_to_the_import(admin_client):
    assert reverse("admin:accounts_user_import") in admin_client.get(changelist()).content.decode()


def make_students(n, **fields):
    return [User.objects.create_user(username=f"student{i:03d}", password="x", **fields) for i in range(n)]


def post_action(client, action, users, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [u.pk for u in users], **extra}
    return client.post(changelist(), data)


def test_add_to_group_asks_for_the_group_then_adds_everyone_selected(admin_client):
    students = make_students(50)
    group = Group.objects.create(name="项目组")
    students[0].groups.add(group)
    step = post_action(admin_client, "add_to_group", students)
    assert step.status_code == HTTPStatus.OK and "form" in step.context
    done = post_action(admin_client, "add_to_group", students, apply="1", group=group.pk)
    assert done.status_code == HTTPStatus.FOUND
    assert group.user_set.count() == 50
    messages = [str(m) for m in done.wsgi_request._messages]
    assert any("49" in m for m in messages), messages


def test_add_to_a_new_group_creates_it(admin_client):
    students = make_students(3)
    post_action(admin_client, "add_to_group", students, apply="1", new_group="新组")
    assert Group.objects.get(name="新组").user_set.count() == 3


def test_remove_from_group_removes_only_the_selected(admin_client):
    students = make_students(4)
    group = Group.objects.create(name="g")
    group.user_set.add(*students)
    post_action(admin_client, "remove_from_group", students[:3], apply="1", group=group.pk)
    assert list(group.user_set.all()) == [students[3]]


def test_choosing_no_group_shows_the_form_again(admin_client):
    students = make_students(2)
    response = post_action(admin_client, "add_to_group", students, apply="1")
    assert response.status_code == HTTPStatus.OK and response.context["form"].errors


def test_reactivate_brings_back_deactivated_users(admin_client):
    students = make_students(3, is_active=False)
    post_action(admin_client, "reactivate_users", students)
    assert User.objects.filter(username__startswith="student", is_active=True).count() == 3


def test_issue_links_leads_to_printable_slips_for_active_students_only(admin_client):
    students = make_students(3)
    students[2].is_active = False
    students[2].save()
    response = post_action(admin_client, "issue_set_password_links", students)
    assert response.status_code == HTTPStatus.FOUND
    slips = admin_client.get(response["Location"])
    assert [s["user"].username for s in slips.context["slips"]] == ["student000", "student001"]


def test_a_staff_member_without_superuser_rights_gets_no_link_for_an_admin(client, staff):
    helper = User.objects.create_user(username="assistant", password="x", is_staff=True)
    helper.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client.force_login(helper)
    slips = client.get(reverse("admin:accounts_user_slips") + f"?ids={staff.pk}")
    assert slips.status_code == HTTPStatus.OK
    assert slips.context["slips"] == [] and slips.context["refused"] == [staff]


def test_temporary_passwords_are_confirmed_first_then_shown_once(admin_client):
    students = make_students(2)
    step = post_action(admin_client, "set_temporary_passwords", students)
    assert step.status_code == HTTPStatus.OK
    assert User.objects.get(pk=students[0].pk).check_password("x")  # nothing changed yet
    done = post_action(admin_client, "set_temporary_passwords", students, apply="1")
    assert done.status_code == HTTPStatus.OK and "no-store" in done["Cache-Control"]
    for slip in done.context["slips"]:
        user = User.objects.get(pk=slip["user"].pk)
        assert user.check_password(slip["password"]) and user.must_change_password


def test_print_selected_codes_gives_one_slip_per_code(admin_client):
    codes = [InviteCode.objects.create(code=f"CODE{i}", max_uses=1) for i in range(3)]
    response = admin_client.post(
        reverse("admin:accounts_invitecode_changelist"),
        {"action": "print_invite_slips", ACTION_CHECKBOX_NAME: [c.pk for c in codes]},
    )
    slips = admin_client.get(response["Location"])
    page = slips.content.decode()
    assert [i.code for i in slips.context["invites"]] == ["CODE0", "CODE1", "CODE2"]
    assert all(code.code in page for code in codes) and "/accounts/signup/" in page


def test_group_pages_list_members_and_count_them(admin_client):
    group = Group.objects.create(name="team-x")
    group.user_set.add(*make_students(3))
    listing = admin_client.get(reverse("admin:auth_group_changelist"))
    assert listing.context["cl"].result_list[0].member_count == 3
    page = admin_client.get(reverse("admin:auth_group_change", args=[group.pk])).content.decode()
    assert all(f"student00{i}" in page for i in range(3))


def test_an_invite_code_page_lists_who_used_it(admin_client):
    invite = InviteCode.objects.create(code="USED1", max_uses=5)
    user = User.objects.create_user(username="redeemer-a", password="x")
    InviteRedemption.objects.create(invite=invite, user=user)
    page = admin_client.get(reverse("admin:accounts_invitecode_change", args=[invite.pk])).content.decode()
    assert "redeemer-a" in page


def test_slips_pages_are_for_staff_only(client, student):
    client.force_login(student)
    for name in ("admin:accounts_user_slips", "admin:accounts_invitecode_slips", "admin:accounts_user_import"):
        assert client.get(reverse(name)).status_code == HTTPStatus.FOUND


def test_an_oversized_upload_is_refused_beside_the_field(admin_client):
    big = SimpleUploadedFile("big.csv", b"username\n" + b"a" * (1024 * 1024 + 1))
    response = admin_client.post(reverse("admin:accounts_user_import"), {"file": big})
    assert response.status_code == HTTPStatus.OK and response.context["form"].errors["file"]


def test_staff_can_see_and_set_must_change_password_on_the_user_page(admin_client):
    page = admin_client.get(reverse("admin:accounts_user_change", args=[make_students(1)[0].pk]))
    assert "must_change_password" in page.context["adminform"].form.fields
