"""Password reset by e-mail through a real SMTP server on loopback (aiosmtpd), one that refuses, and none;
the mail settings' parsing; the optional e-mail field at sign-up."""

import re
import socket
from http import HTTPStatus

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.urls import reverse

from portal.config import Config
from portal.config import mail as mailconfig
from portal.config.env import Env, EnvError
from portal.config.sections import accounts_from_env
from staff.models import MailFailure
from tests.conftest import PASSWORD
from tests.live import free_port

User = get_user_model()
RESET = reverse("password_reset")
NEW_PASSWORD = "A-brand-new-passphrase-42"
pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self, refuse: bool = False):
        self.messages = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 Message accepted"


def _smtp(settings, inbox):
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "noreply@cfps.test"
    return controller


@pytest.fixture
def inbox(settings):
    inbox = Inbox()
    controller = _smtp(settings, inbox)
    yield inbox
    controller.stop()


@pytest.fixture
def refusing_server(settings):
    controller = _smtp(settings, Inbox(refuse=True))
    yield controller
    controller.stop()


@pytest.fixture
def dead_server(settings, inbox):
    # A port with nothing listening: connection refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = sock.getsockname()[1]
    return settings.EMAIL_PORT


@pytest.fixture
def lihua(db):
    return User.objects.create_user(username="lihua", password=PASSWORD, email="lihua@example.edu.cn")


def test_reset_mail_arrives_over_smtp_and_its_link_sets_a_new_password(client, inbox, lihua, settings):
    page = client.get(RESET)
    assert "忘记密码" in page.content.decode() and 'type="email"' in page.content.decode()
    response = client.post(RESET, {"email": " LiHua@Example.edu.cn "})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("password_reset_done")
    assert "请查收邮件" in client.get(response["Location"]).content.decode()
    [(recipients, content)] = inbox.messages
    assert recipients == ["lihua@example.edu.cn"]
    assert "lihua" in content
    link = re.search(r"(\S+/accounts/reset/\S+/)", content.replace("=\n", "")).group(1)
    # PUBLIC_URL, not the Host header the request came with (the test client's "testserver").
    assert link.startswith(settings.PUBLIC_URL + "/")
    form = client.get(link.removeprefix(settings.PUBLIC_URL), follow=True)
    assert "设置新密码" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == HTTPStatus.FOUND
    lihua.refresh_from_db()
    assert lihua.check_password(NEW_PASSWORD)
    # One use only.
    assert "此链接已失效" in client.get(link.removeprefix(settings.PUBLIC_URL), follow=True).content.decode()


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, inbox, lihua):
    response = client.post(RESET, {"email": "nobody@example.edu.cn"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("password_reset_done")
    assert inbox.messages == []


def test_a_refusing_mail_server_is_told_to_the_student_and_recorded_for_staff(client, refusing_server, lihua, staff):
    response = client.post(RESET, {"email": lihua.email})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "邮件未能发出" in response.content.decode()
    failure = MailFailure.objects.get()
    assert (failure.recipient, failure.user, failure.purpose) == (lihua.email, lihua, "password_reset")
    assert "550" in failure.error
    client.force_login(staff)
    listing = client.get(reverse("admin:staff_mailfailure_changelist")).content.decode()
    assert lihua.email in listing and "550" in listing


@pytest.mark.parametrize("email", ["lihua@example.edu.cn", "nobody@example.edu.cn"])
def test_a_dead_mail_server_gives_the_same_failure_for_known_and_unknown_addresses(client, dead_server, lihua, email):
    response = client.post(RESET, {"email": email})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "邮件未能发出" in response.content.decode()
    assert MailFailure.objects.filter(recipient=email).exists()


def test_reset_requests_are_limited_per_address_and_per_account(client, inbox, lihua, settings):
    settings.PASSWORD_RESET_RATE_LIMIT = "3/h"
    variants = ["lihua@example.edu.cn", "LIHUA@example.edu.cn", " lihua@EXAMPLE.edu.cn", "Lihua@Example.EDU.CN"]
    statuses = [client.post(RESET, {"email": email}).status_code for email in variants]
    assert statuses == [HTTPStatus.FOUND] * 3 + [HTTPStatus.TOO_MANY_REQUESTS]
    assert len(inbox.messages) == 3
    # Unknown addresses are limited at the same count: the limit tells nothing about who has an account.
    unknown = [client.post(RESET, {"email": "ghost@example.edu.cn"}).status_code for _ in range(4)]
    assert unknown == statuses


def test_without_a_mail_server_the_reset_page_says_to_ask_staff(client, settings, lihua):
    settings.EMAIL_ENABLED = False
    for response in (client.get(RESET), client.post(RESET, {"email": lihua.email})):
        assert response.status_code == HTTPStatus.OK
        assert "请联系老师或管理员" in response.content.decode()
    assert 'href="/accounts/password_reset/"' in client.get(reverse("login")).content.decode()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"EMAIL_ENABLED": False}),
        (
            {"EMAIL_URL": "smtp://bot%40school.cn:p%40ss@smtp.school.cn:587?tls=1"},
            {"EMAIL_HOST": "smtp.school.cn", "EMAIL_PORT": 587, "EMAIL_HOST_USER": "bot@school.cn",
             "EMAIL_HOST_PASSWORD": "p@ss", "EMAIL_USE_TLS": True, "DEFAULT_FROM_EMAIL": "bot@school.cn"},
        ),
        ({"EMAIL_URL": "smtps://smtp.school.cn", "DEFAULT_FROM_EMAIL": "a@school.cn"},
         {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False}),
        ({"EMAIL_HOST": "mail", "EMAIL_PORT": "2525", "EMAIL_USE_TLS": "yes", "DEFAULT_FROM_EMAIL": "a@b.cn"},
         {"EMAIL_ENABLED": True, "EMAIL_PORT": 2525, "EMAIL_USE_TLS": True}),
    ],
)  # fmt: skip
def test_mail_settings_from_env(values, expected):
    config = mailconfig.from_env(Env(values))
    attributes = {key: key.lower().removeprefix("email_") for key in expected}
    assert {key: getattr(config, name) for key, name in attributes.items()} == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"EMAIL_URL": "http://smtp.school.cn"}, "smtp://"),
        ({"EMAIL_URL": "smtp://smtp.school.cn:abc"}, "port"),
        ({"EMAIL_URL": "smtp://smtp.school.cn?tsl=1"}, "unknown option"),
        ({"EMAIL_URL": "smtps://smtp.school.cn?tls=1"}, "exclude"),
        ({"EMAIL_HOST": "mail", "EMAIL_USE_TLS": "maybe"}, "EMAIL_USE_TLS"),
        ({"EMAIL_HOST": "mail"}, "DEFAULT_FROM_EMAIL"),
        ({"SIGNUP_EMAIL": "sometimes"}, "SIGNUP_EMAIL"),
    ],
)
def test_a_bad_mail_setting_is_one_line_naming_the_key(values, message):
    with pytest.raises(EnvError, match=message):
        Config(Env(values)).accounts  # noqa: B018  (the mail section first, then the sign-up e-mail mode)


def test_signup_asks_for_an_optional_email_next_to_the_other_fields(client, signup_data, settings):
    settings.SIGNUP_EMAIL = "optional"
    page = client.get(reverse("signup")).content.decode()
    assert page.index('name="username"') < page.index('name="email"') < page.index('name="password1"')
    assert client.post(reverse("signup"), signup_data("nomail")).status_code == HTTPStatus.FOUND
    client.logout()
    client.post(reverse("signup"), signup_data("withmail", email="w@example.edu.cn"))
    assert User.objects.get(username="withmail").email == "w@example.edu.cn"


def test_a_required_email_missing_or_invalid_is_an_error_beside_the_field(client, signup_data, settings):
    settings.SIGNUP_EMAIL = "required"
    for email in ("", "not-an-address"):
        response = client.post(reverse("signup"), signup_data(email=email))
        assert response.status_code == HTTPStatus.OK
        assert list(response.context["form"].errors) == ["email"]
        assert 'id="id_email_error"' in response.content.decode()
    assert not User.objects.exists()


def test_signup_email_off_hides_the_field(client, settings):
    settings.SIGNUP_EMAIL = "off"
    assert 'name="email"' not in client.get(reverse("signup")).content.decode()


@pytest.mark.parametrize(
    ("key", "value"),
    [("EMAIL_URL", "http://smtp.school.cn"), ("EMAIL_PORT", "abc"), ("SIGNUP_EMAIL", "sometimes")],
)
def test_the_portal_refuses_to_start_with_a_bad_mail_setting_in_one_line(key, value):
    import os
    import subprocess
    import sys

    from tests.live import REPO

    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env.update({"CFPS_ENV_FILE": "/dev/null", "APP_PROFILE": "dev", "EMAIL_HOST": "mail.school.cn", key: value})
    env["DEFAULT_FROM_EMAIL"] = "noreply@school.cn"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "mail_enabled", "mode"),
    [({}, True, "optional"), ({}, False, "off"), ({"SIGNUP_EMAIL": "Required"}, False, "required")],
)
def test_signup_asks_for_an_email_by_default_only_when_mails_can_be_sent(values, mail_enabled, mode):
    assert accounts_from_env(Env(values), mail_enabled).signup_email == mode
