"""Sessions on shared PCs and idle staff sessions (rules in accounts/sessions.py): 这是公共电脑 makes the session
end with the browser and after SHARED_PC_IDLE_MINUTES idle, staff sessions end after STAFF_IDLE_MINUTES idle,
the last-request time is written at most once a minute, and an idled-out shared-PC login takes its hub tokens
with it. Idle time is made by moving the session's (and the login row's) last-request time back, not by waiting.
"""

from __future__ import annotations

import time
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from accounts import events, sessions
from accounts.models import SharedPcLogin
from tests.accounts.test_oauth import USERINFO, exchange, get_code, pkce_pair
from tests.conftest import PASSWORD

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
LOGIN = reverse("login")


def login(client, username="student9", shared_pc=False):
    data = {"username": username, "password": PASSWORD}
    if shared_pc:
        data["shared_pc"] = "on"
    response = client.post(LOGIN, data)
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:1000]
    return response


def idle_for(client, seconds: int) -> None:
    """Make the session (and its shared-PC row) look as if its last request was `seconds` ago."""
    session = client.session
    session[sessions.SEEN_KEY] = int(time.time()) - seconds
    session.save()
    if login_id := session.get(sessions.SHARED_KEY):
        SharedPcLogin.objects.filter(pk=login_id).update(last_seen=timezone.now() - timedelta(seconds=seconds))


def logged_in(client) -> bool:
    return SESSION_KEY in client.session


@pytest.fixture
def hub_app(db):
    from django.core.management import call_command

    call_command("ensure_hub_client", verbosity=0)


def hub_tokens(client) -> dict:
    verifier, challenge = pkce_pair()
    response = exchange(Client(), get_code(client, challenge), verifier)
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def userinfo(tokens) -> int:
    return Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code


def refresh(tokens) -> int:
    return (
        Client()
        .post(
            reverse("oauth2_provider:token"),
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": settings.HUB_CLIENT_ID,
                "client_secret": settings.HUB_CLIENT_SECRET,
            },
        )
        .status_code
    )


# --- the box ----------------------------------------------------------------------------------------------------
def test_the_login_form_offers_the_shared_computer_box(client, db):
    html = client.get(LOGIN).content.decode()
    assert "这是公共电脑" in html and 'type="checkbox" name="shared_pc"' in html
    assert "15 分钟无操作后会自动退出登录" in html


def test_a_shared_pc_login_gets_a_session_cookie_that_ends_with_the_browser(client, student):
    response = login(client, shared_pc=True)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value and not cookie["max-age"] and not cookie["expires"]
    assert SharedPcLogin.objects.filter(user=student, ended_at__isnull=True).count() == 1


def test_an_ordinary_login_keeps_its_two_week_cookie(client, student):
    response = login(client)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE
    assert not SharedPcLogin.objects.exists()


# --- idle limits --------------------------------------------------------------------------------------------------
def test_a_shared_pc_session_ends_after_its_idle_minutes(client, student):
    login(client, shared_pc=True)
    idle_for(client, settings.SHARED_PC_IDLE_SECONDS - 60)
    assert client.get(reverse("course")).status_code == HTTPStatus.OK and logged_in(client)  # not yet
    idle_for(client, settings.SHARED_PC_IDLE_SECONDS + sessions.TOUCH_SECONDS + 1)
    page = client.get(reverse("home"))
    assert not logged_in(client)
    assert "你已有一段时间没有操作，已自动退出登录" in page.content.decode()
    assert client.get(reverse("course"))["Location"].startswith(LOGIN)
    assert SharedPcLogin.objects.get(user=student).ended_at is not None


def test_a_form_posted_after_the_idle_limit_goes_to_the_login_page_unhandled(client, student):
    login(client, shared_pc=True)
    idle_for(client, settings.SHARED_PC_IDLE_SECONDS + sessions.TOUCH_SECONDS + 1)
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "Another-pass-2026", "new_password2": "Another-pass-2026"},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == f"{LOGIN}?next={reverse('password_change').replace('/', '%2F')}"
    student.refresh_from_db()
    assert student.check_password(PASSWORD)


def test_an_ordinary_student_session_has_no_idle_limit(client, student):
    login(client)
    idle_for(client, 24 * 3600)
    assert client.get(reverse("course")).status_code == HTTPStatus.OK and logged_in(client)


def test_staff_sessions_end_after_the_staff_idle_minutes(client, staff, settings):
    settings.STAFF_OTP = "optional"
    login(client, "teacher")
    idle_for(client, settings.STAFF_IDLE_SECONDS - 60)
    assert client.get(reverse("admin:index")).status_code == HTTPStatus.OK
    idle_for(client, settings.STAFF_IDLE_SECONDS + sessions.TOUCH_SECONDS + 1)
    assert client.get(reverse("admin:index")).status_code == HTTPStatus.FOUND and not logged_in(client)


def test_with_both_limits_the_shorter_one_counts(client, staff, settings):
    settings.STAFF_OTP = "optional"
    settings.STAFF_IDLE_SECONDS, settings.SHARED_PC_IDLE_SECONDS = 3600, 300
    login(client, "teacher", shared_pc=True)
    idle_for(client, 300 + sessions.TOUCH_SECONDS + 1)
    client.get(reverse("home"))
    assert not logged_in(client)


def test_the_last_request_time_is_written_at_most_once_a_minute(client, student):
    login(client, shared_pc=True)
    idle_for(client, 30)
    before = client.session[sessions.SEEN_KEY]
    row_before = SharedPcLogin.objects.get().last_seen
    client.get(reverse("course"))
    assert client.session[sessions.SEEN_KEY] == before  # 30 s ago: not rewritten
    assert SharedPcLogin.objects.get().last_seen == row_before
    idle_for(client, 90)
    client.get(reverse("course"))
    assert abs(client.session[sessions.SEEN_KEY] - time.time()) < 5  # rewritten, and the row with it
    assert timezone.now() - SharedPcLogin.objects.get().last_seen < timedelta(seconds=5)


# --- the hub's tokens ------------------------------------------------------------------------------------------------
def test_a_shared_pc_session_that_idles_out_on_the_portal_revokes_its_hub_tokens(client, student, hub_app):
    login(client, shared_pc=True)
    tokens = hub_tokens(client)
    assert userinfo(tokens) == HTTPStatus.OK
    idle_for(client, settings.SHARED_PC_IDLE_SECONDS + sessions.TOUCH_SECONDS + 1)
    client.get(reverse("home"))
    assert not AccessToken.objects.filter(user=student).exists()
    assert userinfo(tokens) == HTTPStatus.UNAUTHORIZED
    assert refresh(tokens) == HTTPStatus.BAD_REQUEST


def test_the_hubs_next_refresh_ends_a_shared_pc_login_left_idle_with_no_portal_request(client, student, hub_app):
    """The browser was closed (or left on the hub): the portal sees no request, the hub's auth refresh does."""
    heard = []
    receiver = lambda sender, user, request, shared_pc, **kw: heard.append((user.username, request, shared_pc))  # noqa: E731
    events.session_idled_out.connect(receiver)
    try:
        login(client, shared_pc=True)
        tokens = hub_tokens(client)
        SharedPcLogin.objects.update(
            last_seen=timezone.now() - timedelta(seconds=settings.SHARED_PC_IDLE_SECONDS + sessions.TOUCH_SECONDS + 1)
        )
        assert userinfo(tokens) == HTTPStatus.UNAUTHORIZED
    finally:
        events.session_idled_out.disconnect(receiver)
    assert heard == [("student9", None, True)]
    assert not AccessToken.objects.filter(user=student).exists()
    assert not RefreshToken.objects.filter(user=student, revoked__isnull=True).exists()
    assert refresh(tokens) == HTTPStatus.BAD_REQUEST
    assert SharedPcLogin.objects.get().ended_at is not None


def test_an_active_shared_pc_login_and_ordinary_logins_keep_their_tokens(client, student, hub_app):
    login(client, shared_pc=True)
    tokens = hub_tokens(client)
    idle_for(client, settings.SHARED_PC_IDLE_SECONDS - 60)
    assert userinfo(tokens) == HTTPStatus.OK
    other = Client()
    login(other)
    idle_for(other, 7 * 24 * 3600)
    assert userinfo(hub_tokens(other)) == HTTPStatus.OK


def test_logging_out_ends_the_shared_pc_login(client, student):
    login(client, shared_pc=True)
    client.post(reverse("logout"))
    assert SharedPcLogin.objects.get().ended_at is not None


def test_a_new_shared_pc_login_clears_the_persons_ended_rows(client, student):
    login(client, shared_pc=True)
    client.post(reverse("logout"))
    login(client, shared_pc=True)
    assert SharedPcLogin.objects.filter(user=student).count() == 1


# --- the setting ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "staff", "shared"),
    [({}, 60, 15), ({"STAFF_IDLE_MINUTES": "30", "SHARED_PC_IDLE_MINUTES": "5"}, 30, 5)],
)
def test_idle_minutes_come_from_the_key_table(values, staff, shared):
    from portal.config import Config
    from portal.config.env import Env

    accounts = Config(Env(values)).accounts
    assert (accounts.staff_idle_minutes, accounts.shared_pc_idle_minutes) == (staff, shared)


def test_an_idle_limit_of_zero_minutes_is_refused():
    from portal.config import Config
    from portal.config.env import Env, EnvError

    with pytest.raises(EnvError, match="SHARED_PC_IDLE_MINUTES must be 1 or more"):
        Config(Env({"SHARED_PC_IDLE_MINUTES": "0"})).accounts  # noqa: B018
