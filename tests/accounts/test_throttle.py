"""Throttling: too many login or sign-up POSTs get HTTP 429 with a page saying when to try again; the
client IP comes from X-Real-IP only when a trusted proxy sent it."""

from http import HTTPStatus

import pytest
from django.test import RequestFactory
from django.urls import reverse

from accounts.throttle import client_ip
from tests.conftest import PASSWORD

LOGIN = reverse("login")
SIGNUP = reverse("signup")


# django-ratelimit counts in fixed windows: limits under test use hours, so a window boundary cannot fall
# between the requests of one test and reset the count.
@pytest.mark.django_db
def test_login_is_refused_with_429_after_the_per_username_limit(client, student, settings):
    settings.LOGIN_RATE_LIMIT = "3/h"
    for _ in range(3):
        assert client.post(LOGIN, {"username": "student9", "password": "wrong"}).status_code == HTTPStatus.OK
    response = client.post(LOGIN, {"username": "STUDENT9", "password": PASSWORD})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < int(response["Retry-After"]) <= 3600
    assert response.context["retry_after_minutes"] == -(-int(response["Retry-After"]) // 60)


@pytest.mark.parametrize(
    ("seconds", "english"),
    [(42, "Please wait about 1 minute and try again."), (3600, "Please wait about 60 minutes and try again.")],
)
def test_429_page_says_when_to_try_again(rf, seconds, english):
    from django.utils import translation

    from accounts.throttle import too_many_requests

    with translation.override("en"):
        response = too_many_requests(rf.post(LOGIN), seconds)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == str(seconds)
    assert english in response.content.decode()
    with translation.override("zh-hans"):
        chinese = too_many_requests(rf.post(LOGIN), seconds).content.decode()
    assert "请" in chinese and english not in chinese


@pytest.mark.django_db
def test_login_limit_for_one_username_does_not_block_another(client, student, settings):
    settings.LOGIN_RATE_LIMIT = "2/m"
    for _ in range(3):
        client.post(LOGIN, {"username": "someone-else", "password": "wrong"})
    response = client.post(LOGIN, {"username": "student9", "password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_login_is_limited_per_client_ip_across_usernames(client, student, settings):
    settings.LOGIN_IP_RATE_LIMIT = "4/h"
    for i in range(4):
        client.post(LOGIN, {"username": f"guess{i}", "password": "wrong"})
    assert client.post(LOGIN, {"username": "student9", "password": PASSWORD}).status_code == 429


@pytest.mark.django_db
def test_reading_the_login_page_is_never_limited(client, settings):
    settings.LOGIN_IP_RATE_LIMIT = "1/m"
    for _ in range(5):
        assert client.get(LOGIN).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_signup_is_limited_per_client_ip(client, signup_data, settings):
    settings.SIGNUP_RATE_LIMIT = "2/h"
    client.post(SIGNUP, signup_data("first1", invite_code="WRONG"))
    client.post(SIGNUP, signup_data("second2", invite_code="WRONG"))
    response = client.post(SIGNUP, signup_data("third3"))
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 60


@pytest.mark.django_db
def test_signup_limit_counts_each_forwarded_client_separately(client, signup_data, settings):
    settings.SIGNUP_RATE_LIMIT = "1/h"
    first = client.post(SIGNUP, signup_data("first1", invite_code="WRONG"), HTTP_X_REAL_IP="203.0.113.5")
    other = client.post(SIGNUP, signup_data("second2"), HTTP_X_REAL_IP="203.0.113.6")
    assert first.status_code == HTTPStatus.OK
    assert other.status_code == HTTPStatus.FOUND


@pytest.mark.parametrize(
    ("peer", "real_ip", "forwarded_for", "expected"),
    [
        ("127.0.0.1", "203.0.113.9", "", "203.0.113.9"),  # Nginx on loopback: believe X-Real-IP
        ("::1", "2001:db8::1", "", "2001:db8::1"),
        ("127.0.0.1", "", "", "127.0.0.1"),  # no header
        ("127.0.0.1", "not-an-ip", "", "127.0.0.1"),  # garbage header
        ("198.51.100.7", "203.0.113.9", "203.0.113.8", "198.51.100.7"),  # untrusted peer: headers ignored
        ("127.0.0.1", "", ",203.0.113.5", "203.0.113.5"),  # JupyterHub's proxy appended the client
        ("127.0.0.1", "", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # a forged first entry is skipped
        ("127.0.0.1", "203.0.113.5", "203.0.113.5, 127.0.0.1", "203.0.113.5"),  # Nginx then the proxy
        ("127.0.0.1", "6.6.6.6", "203.0.113.5", "203.0.113.5"),  # X-Forwarded-For wins over X-Real-IP
        ("127.0.0.1", "", "garbage, 127.0.0.1", "127.0.0.1"),  # unparsable chain: fall back to the peer
    ],
)
def test_client_ip_believes_forwarding_headers_only_from_trusted_proxies(
    settings, peer, real_ip, forwarded_for, expected
):
    settings.TRUSTED_PROXIES = {"127.0.0.1", "::1"}
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_REAL_IP=real_ip, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == expected
