"""Simplified Chinese by default, English on request, a switcher on every page."""

from http import HTTPStatus

import pytest
from django.urls import reverse

PAGES = ["home", "signup", "login"]


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_pages_are_chinese_by_default(client, page):
    response = client.get(reverse(page))
    assert '<html lang="zh-hans">' in response.text
    assert "注册" in response.text  # "Sign up" in the header


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_pages_are_english_when_the_browser_asks(client, page):
    response = client.get(reverse(page), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert '<html lang="en">' in response.text
    assert "Sign up" in response.text
    assert "注册" not in response.text


@pytest.mark.django_db
def test_chinese_browsers_get_chinese(client):
    response = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    assert '<html lang="zh-hans">' in response.text


@pytest.mark.django_db
@pytest.mark.parametrize("page", [*PAGES, "logout"])
def test_every_page_has_the_language_switcher(client, page):
    response = client.get(reverse(page))
    assert f'action="{reverse("set_language")}"' in response.text
    assert 'value="en"' in response.text and 'value="zh-hans"' in response.text


@pytest.mark.django_db
def test_switcher_choice_sticks_over_accept_language(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("signup")})
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("signup")
    page = client.get(reverse("signup"), HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert '<html lang="en">' in page.text


@pytest.mark.django_db
def test_password_validator_messages_are_chinese(client, signup_data):
    response = client.post(reverse("signup"), signup_data(password1="12345", password2="12345"))
    errors = " ".join(response.context["form"].errors["password1"])
    assert "密码" in errors
    assert "password" not in errors.lower()


@pytest.mark.django_db
def test_invite_errors_are_chinese(client, signup_data):
    response = client.post(reverse("signup"), signup_data(invite_code="NOPE"))
    assert "邀请码" in " ".join(response.context["form"].errors["invite_code"])
