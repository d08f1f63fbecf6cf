"""The admin's index for staff: one 教师工具 section (usage page, announcements, failed e-mails, the course's
pages); the OAuth provider's models and pending hub calls are for superusers only, under Chinese names, and
a teacher or TA who types their address gets a 403."""

from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import PendingHubCall

User = get_user_model()
pytestmark = pytest.mark.django_db

SUPERUSER_ONLY = [
    "admin:oauth2_provider_application_changelist",
    "admin:oauth2_provider_accesstoken_changelist",
    "admin:oauth2_provider_refreshtoken_changelist",
    "admin:oauth2_provider_grant_changelist",
    "admin:oauth2_provider_idtoken_changelist",
    "admin:accounts_pendinghubcall_changelist",
]


def sections(response) -> dict[str, list[str]]:
    return {str(app["name"]): [str(model["name"]) for model in app["models"]] for app in response.context["app_list"]}


@pytest.mark.parametrize("role", ["teacher", "ta"])
def test_the_staff_tools_are_one_section_first_on_the_index(client, make_staff, role):
    client.force_login(make_staff("wang", role))
    response = client.get(reverse("admin:index"))
    found = sections(response)
    assert list(found)[0] == "教师工具"
    assert list(found).count("教师工具") == 1 and "课程" not in found  # the course's pages are in it
    tools = found["教师工具"]
    assert tools[0] == "使用情况" and "公告" in tools
    assert ("发送失败的邮件" in tools) == (role == "teacher")
    assert any(name in tools for name in ("课程资料", "作业")), tools
    page = response.content.decode()
    assert page.count(f'href="{reverse("staff_usage")}"') >= 1
    assert "OAuth" not in page and "Hub 账号移除" not in page


def test_the_sidebar_shows_the_same_section(client, make_staff):
    client.force_login(make_staff("wang", "teacher"))
    response = client.get(reverse("admin:accounts_user_changelist"))
    assert [str(app["name"]) for app in response.context["available_apps"]][0] == "教师工具"


def test_staff_with_only_the_usage_page_get_a_section_with_it(client):
    helper = User.objects.create_user(username="helper", password="x", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_usage"))
    client.force_login(helper)
    found = sections(client.get(reverse("admin:index")))
    assert found == {"教师工具": ["使用情况"]}


def test_a_superuser_sees_the_oauth_models_and_hub_removals_under_chinese_names(client, staff):
    client.force_login(staff)
    found = sections(client.get(reverse("admin:index")))
    assert found["OAuth 提供方（Hub 登录）"] == ["ID 令牌", "OAuth 应用", "刷新令牌", "授权码", "访问令牌"]
    assert "待执行的 Hub 操作" in found["账号与邀请"]
    for name in SUPERUSER_ONLY:
        assert client.get(reverse(name)).status_code == HTTPStatus.OK, name


@pytest.mark.parametrize("role", ["teacher", "ta"])
@pytest.mark.parametrize("name", SUPERUSER_ONLY)
def test_teachers_and_tas_cannot_reach_them(client, make_staff, role, name):
    client.force_login(make_staff("wang", role))
    assert client.get(reverse(name)).status_code == HTTPStatus.FORBIDDEN


def test_not_even_a_permission_given_by_hand_opens_them(client, make_staff):
    teacher = make_staff("wang", "teacher")
    teacher.user_permissions.add(*Permission.objects.filter(content_type__app_label="oauth2_provider"))
    removal = PendingHubCall.objects.create(username="gone", reason="deleted")
    client.force_login(teacher)
    assert teacher.has_perm("oauth2_provider.view_accesstoken") and teacher.has_perm("accounts.view_pendinghubcall")
    for name in SUPERUSER_ONLY:
        assert client.get(reverse(name)).status_code == HTTPStatus.FORBIDDEN, name
    change = reverse("admin:accounts_pendinghubcall_change", args=[removal.pk])
    assert client.get(change).status_code == HTTPStatus.FORBIDDEN
    assert "OAuth" not in client.get(reverse("admin:index")).content.decode()
