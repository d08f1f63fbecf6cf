"""CSV exports from the admin: accounts (学号, 姓名, e-mail, classes, active, last login, date joined) and invite
codes, as an action on the selection and a button for what the list shows; bytes Excel opens with Chinese
names (UTF-8 with a BOM, or GB18030); the view permission decides; a cell is never a formula."""

import codecs
import csv
import io
from datetime import datetime
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts import roster
from accounts.models import InviteCode

User = get_user_model()
pytestmark = pytest.mark.django_db
BEIJING = ZoneInfo("Asia/Shanghai")
USERS = reverse("admin:accounts_user_changelist")
USER_EXPORT = reverse("admin:accounts_user_export")
INVITES = reverse("admin:accounts_invitecode_changelist")
INVITE_EXPORT = reverse("admin:accounts_invitecode_export")


@pytest.fixture
def class_a(staff_roles):
    team = Group.objects.create(name="经济学1班")
    other = Group.objects.create(name="经济学2班")
    zhang = User.objects.create_user(username="s2026001", first_name="张三", email="zhang@example.edu.cn")
    zhang.last_login = datetime(2026, 3, 1, 8, 30, tzinfo=BEIJING)
    zhang.date_joined = datetime(2026, 2, 20, 23, 5, tzinfo=BEIJING)
    zhang.save()
    zhang.groups.add(team, other)
    li = User.objects.create_user(username="s2026002", first_name="李四", is_active=False)
    li.groups.add(team)
    User.objects.create_user(username="s2026003", first_name="王五").groups.add(other)
    return team


def table(response, encoding="utf-8-sig"):
    assert response.status_code == HTTPStatus.OK, response.status_code
    assert response["Content-Type"] == f"text/csv; charset={encoding}"
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(response.content.decode(encoding), newline="")))


def export_action(client, changelist, objects, encoding="utf-8"):
    data = {"action": "export_selected", ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    confirm = client.post(changelist, data)
    assert confirm.status_code == HTTPStatus.OK and "encoding" in confirm.context["form"].fields
    return client.post(changelist, {**data, "apply": "1", "encoding": encoding})


def test_the_user_list_exports_what_it_shows_with_names_classes_and_beijing_times(client, make_staff, class_a):
    client.force_login(make_staff("laoshi", "teacher"))
    page = client.get(USER_EXPORT, {"groups__id__exact": class_a.pk})
    assert page.status_code == HTTPStatus.OK and "2 " in page.context["intro"]
    response = client.get(USER_EXPORT, {"groups__id__exact": class_a.pk, "encoding": "utf-8", "export": "1"})
    assert response.content.startswith(codecs.BOM_UTF8)  # what makes Excel read UTF-8
    rows = table(response)
    assert rows[0] == ["学号", "姓名", "邮箱", "班级", "有效", "最近登录", "注册时间"]
    assert rows[1:] == [
        [
            "s2026001",
            "张三",
            "zhang@example.edu.cn",
            "经济学1班; 经济学2班",
            "是",
            "2026-03-01 08:30",
            "2026-02-20 23:05",
        ],
        ["s2026002", "李四", "", "经济学1班", "否", "", rows[2][6]],
    ]


def test_the_export_button_keeps_the_search_and_is_on_the_list(client, staff, class_a):
    client.force_login(staff)
    changelist = client.get(USERS, {"q": "王五"}).content.decode()
    assert f'href="{USER_EXPORT}?q=%E7%8E%8B%E4%BA%94"' in changelist
    rows = table(client.get(USER_EXPORT, {"q": "王五", "export": "1", "encoding": "utf-8"}))
    assert [row[0] for row in rows[1:]] == ["s2026003"]


def test_gb18030_is_offered_for_older_excel(client, staff, class_a):
    client.force_login(staff)
    response = client.get(USER_EXPORT, {"q": "张三", "export": "1", "encoding": "gb18030"})
    assert not response.content.startswith(codecs.BOM_UTF8)
    assert "张三".encode("gb18030") in response.content
    assert table(response, "gb18030")[1][:2] == ["s2026001", "张三"]


def test_the_action_exports_the_selected_users(client, staff, class_a):
    client.force_login(staff)
    chosen = User.objects.filter(username__in=["s2026003", "s2026001"]).order_by("username")
    rows = table(export_action(client, USERS, chosen))
    assert [row[:2] for row in rows[1:]] == [["s2026001", "张三"], ["s2026003", "王五"]]


def test_staff_roles_are_not_classes_in_the_export(client, staff, make_staff, class_a):
    make_staff("zhujiao", "ta").groups.add(class_a)
    client.force_login(staff)
    rows = {row[0]: row for row in table(client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"}))}
    assert rows["zhujiao"][3] == "经济学1班"  # not "助教; 经济学1班"


def test_an_exported_class_comes_back_as_a_roster_that_changes_nothing(client, staff, class_a):
    client.force_login(staff)
    response = client.get(USER_EXPORT, {"groups__id__exact": class_a.pk, "export": "1", "encoding": "gb18030"})
    report = roster.import_roster(roster.read(response.content), dry_run=True)
    assert [(row.username, row.status) for row in report.rows] == [
        ("s2026001", roster.UNCHANGED),
        ("s2026002", roster.UNCHANGED),
    ]


def test_a_ta_who_may_view_students_may_export_them(client, make_staff, class_a):
    client.force_login(make_staff("zhujiao", "ta"))
    assert len(table(client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"}))) == 5  # header + 4 users
    codes = table(client.get(INVITE_EXPORT, {"export": "1", "encoding": "utf-8"}))
    assert codes[0][0] == "邀请码"


def test_staff_without_the_view_permission_get_403(client, class_a):
    helper = User.objects.create_user(username="helper", password="x", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usage"))
    client.force_login(helper)
    assert client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"}).status_code == HTTPStatus.FORBIDDEN
    assert client.get(INVITE_EXPORT, {"export": "1", "encoding": "utf-8"}).status_code == HTTPStatus.FORBIDDEN
    data = {"action": "export_selected", ACTION_CHECKBOX_NAME: [class_a.user_set.first().pk], "apply": "1"}
    assert client.post(USERS, {**data, "encoding": "utf-8"}).status_code == HTTPStatus.FORBIDDEN


def test_students_cannot_reach_the_export(client, student):
    client.force_login(student)
    response = client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith(reverse("admin:login"))


def test_a_formula_a_student_types_as_e_mail_is_exported_as_text(client, staff):
    # The attack: a student signs up with this address; a teacher opens the export in Excel.
    User.objects.create_user(username="mallory", email="=cmd|'/Ccalc'!A0@example.com")
    User.objects.create_user(username="plus", email="+1@example.com", first_name="@SUM(A1)")
    client.force_login(staff)
    rows = {row[0]: row for row in table(client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"}))}
    assert rows["mallory"][2] == "'=cmd|'/Ccalc'!A0@example.com"
    assert rows["plus"][1:3] == ["'@SUM(A1)", "'+1@example.com"]


def test_invite_codes_export_with_status_group_and_end_of_day_expiry(client, staff, class_a):
    InviteCode.objects.create(
        code="CLASS-A",
        max_uses=40,
        group=class_a,
        note="秋季",
        expires_at=datetime(2027, 1, 31, 23, 59, 59, tzinfo=BEIJING),
    )
    InviteCode.objects.create(code="OFF", is_active=False)
    client.force_login(staff)
    assert f'href="{INVITE_EXPORT}' in client.get(INVITES).content.decode()
    rows = table(export_action(client, INVITES, InviteCode.objects.order_by("code")))
    assert rows[0] == ["邀请码", "状态", "已用次数", "上限", "过期时间", "组", "备注", "创建时间", "注册网址"]
    by_code = {row[0]: row for row in rows[1:]}
    assert by_code["CLASS-A"][1:7] == ["可用", "0", "40", "2027-01-31 23:59", "经济学1班", "秋季"]
    assert by_code["CLASS-A"][8].endswith("/accounts/signup/")
    assert by_code["OFF"][1] == "已停用"


def test_english_staff_get_english_headers(client, staff, class_a):
    client.force_login(staff)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    rows = table(client.get(USER_EXPORT, {"export": "1", "encoding": "utf-8"}))
    assert rows[0] == ["username", "name", "email", "groups", "active", "last login", "date joined"]


def test_the_export_takes_only_the_filters_the_list_allows(client, make_staff, class_a):
    # The attack: a TA guesses password hashes through a filter the change list never offers. The export
    # builds the same change list, so Django's own refusal applies (400), and nothing is written.
    client.force_login(make_staff("zhujiao", "ta"))
    response = client.get(USER_EXPORT, {"password__startswith": "pbkdf2", "export": "1", "encoding": "utf-8"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not response.get("Content-Disposition")


def test_a_filter_value_that_makes_no_sense_leads_back_to_the_list(client, staff, class_a):
    client.force_login(staff)
    response = client.get(USER_EXPORT, {"groups__id__exact": "abc", "export": "1", "encoding": "utf-8"}, follow=True)
    assert response.redirect_chain[-1][0] == USERS
    assert "无法按这些筛选条件导出" in response.content.decode()
