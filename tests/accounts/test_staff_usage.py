"""The staff usage page, in-process: staff only, 200 students render in under 2 s even when the hub does
not answer, sorting and the group filter, the stop button needs POST and staff. tests/e2e/test_staff_pages.py
checks it against a running hub, in a browser."""

import time
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from staff.models import Announcement

User = get_user_model()
USAGE = reverse("staff_usage")
pytestmark = pytest.mark.django_db


@pytest.fixture
def class_of_200(db):
    group = Group.objects.create(name="class-a")
    now = timezone.now()
    users = User.objects.bulk_create(
        [User(username=f"s{i:03d}", last_login=now - timezone.timedelta(hours=i)) for i in range(200)]
    )
    group.user_set.add(*users[:50])
    return users


def test_usage_page_is_for_staff_only(client, student):
    assert client.get(USAGE).status_code == HTTPStatus.FOUND
    client.force_login(student)
    assert client.get(USAGE).status_code == HTTPStatus.FOUND  # to the admin login


def test_usage_page_with_200_students_renders_well_under_two_seconds(client, staff, class_of_200):
    client.force_login(staff)
    client.get(USAGE)  # warm up templates and translations
    started = time.monotonic()
    response = client.get(USAGE)
    elapsed = time.monotonic() - started
    assert response.status_code == HTTPStatus.OK
    assert response.content.decode().count('data-username="s') == 200
    assert elapsed < 2.0, f"{elapsed:.2f}s"  # the limit in the issue; typically ~0.1 s here
    # No hub runs in this test: the page says so instead of failing or waiting.
    assert 'data-testid="hub-problem"' in response.content.decode()


def test_usage_page_sorts_and_filters_by_group(client, staff, class_of_200):
    client.force_login(staff)
    rows = [row["user"].username for row in client.get(USAGE, {"o": "-last_login"}).context["rows"]]
    assert rows[:3] == ["teacher", "s000", "s001"]  # the staff account logged in just now
    rows = [row["user"].username for row in client.get(USAGE, {"o": "last_login", "group": "class-a"}).context["rows"]]
    assert rows == [f"s{i:03d}" for i in range(49, -1, -1)]


def test_stop_button_is_a_post_for_staff_only(client, staff, student):
    stop = reverse("staff_stop_server")
    client.force_login(staff)
    assert client.get(stop).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    client.force_login(student)
    assert client.post(stop, {"username": student.username}).status_code == HTTPStatus.FOUND
    assert "login" in client.post(stop, {"username": student.username})["Location"]


def test_admin_index_links_to_the_usage_page(client, staff):
    client.force_login(staff)
    assert f'href="{USAGE}"' in client.get(reverse("admin:index")).content.decode()


def test_current_announcements_show_on_portal_pages_and_in_the_hub_feed(client):
    Announcement.objects.create(message="周五晚上停机维护")
    Announcement.objects.create(message="旧公告", expires_at=timezone.now() - timezone.timedelta(minutes=1))
    Announcement.objects.create(message="停用的公告", is_active=False)
    page = client.get(reverse("login")).content.decode()
    assert "周五晚上停机维护" in page and "旧公告" not in page and "停用的公告" not in page
    feed = client.get(reverse("announcements_json")).json()
    assert feed == {"announcements": [{"message": "周五晚上停机维护", "level": "info"}]}


def test_stop_button_without_the_csrf_token_is_refused(staff, student):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    response = browser.post(reverse("staff_stop_server"), {"username": student.username})
    assert response.status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize("back", ["https://evil.example/", "//evil.example/admin/usage/", "/admin/"])
def test_stop_button_only_returns_to_the_usage_page(client, staff, student, back):
    client.force_login(staff)
    response = client.post(reverse("staff_stop_server"), {"username": student.username, "back": back})
    assert response["Location"] == USAGE


def test_the_user_list_and_the_usage_page_show_the_name_beside_the_number(client, staff):
    User.objects.create_user(username="s2026001", first_name="张三")  # as a roster stores it
    User.objects.create_user(username="s2026002", first_name="四", last_name="李")  # typed as 名 and 姓
    User.objects.create_user(username="s2026003", first_name="Lei", last_name="Li")
    client.force_login(staff)
    users = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "<th" in users and "姓名" in users
    for number, name in (("s2026001", "张三"), ("s2026002", "李四"), ("s2026003", "Lei Li")):
        assert name in users
        row = next(row for row in users.split("<tr") if f">{number}<" in row)
        assert row.index(number) < row.index(name), row
    usage = client.get(USAGE)
    assert '<td class="name">李四</td>' in usage.content.decode()
    assert "姓名" in [str(label) for _key, label in usage.context["columns"]]
