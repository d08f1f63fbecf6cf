"""Staff sign in with a second factor (rules in accounts/otp.py): enrolment with a QR code and backup codes, a
code at every login, every staff page and the hub's authorization refused to a session without it, wrong codes
counted with the passwords' guesses, resets by a superuser or a command; students are never asked.

Codes are computed from the device's own shared secret with django-otp's TOTP, never by switching the check off.
"""

from __future__ import annotations

import re
import time
from base64 import b32decode
from http import HTTPStatus
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauth2_provider.models import get_grant_model

from accounts import events, otp
from portal.config import Config
from portal.config.env import Env, EnvError
from tests.accounts.test_oauth import AUTHORIZE, authorize_params, exchange, pkce_pair
from tests.conftest import PASSWORD

User = get_user_model()
ADMIN = reverse("admin:index")
VERIFY = reverse("otp_verify")
SETUP = reverse("otp_setup")
BACKUP = reverse("otp_backup_codes")


def code_for(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for `device`, computed from its shared secret; `steps_ahead` of 1 is the
    next 30-second code (a code is accepted once, so a second login in the same step needs the next one)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code_for(device: TOTPDevice) -> str:
    near = {code_for(device, step) for step in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)


def password_login(client, username="teacher", next_url=None):
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("login"), data)


@pytest.fixture
def required(settings):
    settings.STAFF_OTP = "required"
    return settings


@pytest.fixture
def enrolled(staff):
    """`staff` (a superuser, "teacher") with a confirmed authenticator and backup codes, as enrolment leaves them."""
    device = TOTPDevice.objects.create(user=staff, name=otp.TOTP_NAME, confirmed=True)
    otp.make_backup_codes(staff)
    return device


def enrol(client, next_url=ADMIN):
    """Walk the enrolment pages as a person does: read the secret off the page, type the app's code."""
    page = client.get(SETUP, {"next": next_url})
    assert page.status_code == HTTPStatus.OK
    secret = re.search(r'data-testid="otp-secret">([A-Z2-7 ]+)<', page.content.decode()).group(1)
    key = b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
    device = TOTPDevice.objects.get(user__username="teacher", confirmed=False)
    assert key == device.bin_key  # the text on the page is the device's secret
    response = client.post(SETUP, {"code": code_for(device), "next": next_url})
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:2000]
    return device, response


# --- enrolment and login ------------------------------------------------------------------------------------
def test_a_new_staff_members_first_login_asks_to_enrol_with_a_qr_code_then_shows_backup_codes_once(
    client, staff, required
):
    response = password_login(client, next_url=ADMIN)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == ADMIN
    to_setup = client.get(ADMIN)
    assert to_setup.status_code == HTTPStatus.FOUND
    assert to_setup["Location"] == f"{SETUP}?{urlencode({'next': ADMIN})}"
    page = client.get(to_setup["Location"])
    html = page.content.decode()
    assert "<svg" in html and 'data-testid="otp-qr"' in html and "设置两步验证" in html
    assert page["Cache-Control"].startswith("max-age=0") and "no-store" in page["Cache-Control"]

    device, response = enrol(client)
    device.refresh_from_db()
    assert device.confirmed and response["Location"].startswith(BACKUP)
    shown = client.get(response["Location"])
    codes = re.findall(r"<li>([a-z2-7]{4}-[a-z2-7]{4})</li>", shown.content.decode())
    stored = sorted(StaticToken.objects.filter(device__user=device.user).values_list("token", flat=True))
    assert len(codes) == otp.BACKUP_CODES and sorted(c.replace("-", "") for c in codes) == stored
    assert "data-print" in shown.content.decode()
    assert client.get(response["Location"]).status_code == HTTPStatus.FOUND  # shown once, never again
    assert client.get(ADMIN).status_code == HTTPStatus.OK  # the session is verified


def test_every_later_login_asks_for_the_code_and_a_computed_code_opens_the_admin(client, enrolled, required):
    password_login(client)
    response = client.get(ADMIN)
    assert response["Location"] == f"{VERIFY}?{urlencode({'next': ADMIN})}"
    page = client.get(response["Location"])
    assert "两步验证" in page.content.decode() and "<svg" not in page.content.decode()  # no QR code again
    old_key = client.session.session_key
    done = client.post(VERIFY, {"code": code_for(enrolled), "next": ADMIN})
    assert done.status_code == HTTPStatus.FOUND and done["Location"] == ADMIN
    assert client.session.session_key != old_key  # verifying rotates the session key
    assert client.get(ADMIN).status_code == HTTPStatus.OK
    assert client.get(reverse("staff_usage")).status_code == HTTPStatus.OK


def test_a_code_is_accepted_once_so_a_replayed_one_is_refused(client, enrolled, required):
    code = code_for(enrolled)
    password_login(client)
    assert client.post(VERIFY, {"code": code})["Location"] == ADMIN
    other = Client()
    password_login(other)
    again = other.post(VERIFY, {"code": code})
    assert again.status_code == HTTPStatus.OK and "不正确" in again.content.decode()
    assert other.get(ADMIN).status_code == HTTPStatus.FOUND


def test_a_backup_code_works_once(client, enrolled, required):
    backup = StaticToken.objects.filter(device__user=enrolled.user).first().token
    password_login(client)
    assert client.post(VERIFY, {"code": f" {backup[:4].upper()}-{backup[4:]} "})["Location"] == ADMIN
    assert not StaticToken.objects.filter(token=backup).exists()
    other = Client()
    password_login(other)
    assert other.post(VERIFY, {"code": backup}).status_code == HTTPStatus.OK
    assert other.get(ADMIN).status_code == HTTPStatus.FOUND
    assert StaticToken.objects.filter(device__user=enrolled.user).count() == otp.BACKUP_CODES - 1


def test_an_enrolled_account_cannot_enrol_a_second_phone_without_its_code(client, enrolled, required):
    password_login(client)
    response = client.get(SETUP)
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith(VERIFY)
    forged = client.post(SETUP, {"code": "123456"})
    assert forged.status_code == HTTPStatus.FOUND and forged["Location"].startswith(VERIFY)
    assert TOTPDevice.objects.filter(user=enrolled.user).count() == 1


def test_reloading_the_enrolment_page_keeps_the_secret_already_scanned(client, staff, required):
    password_login(client)
    first = client.get(SETUP).content.decode()
    second = client.get(SETUP).content.decode()
    secret = re.compile(r'data-testid="otp-secret">([A-Z2-7 ]+)<')
    assert secret.search(first).group(1) == secret.search(second).group(1)
    assert TOTPDevice.objects.filter(user=staff).count() == 1


# --- wrong codes are guesses ----------------------------------------------------------------------------------
def test_wrong_codes_count_with_wrong_passwords_and_reach_the_same_429_page(client, enrolled, required):
    password_login(client)
    wrong = wrong_code_for(enrolled)
    statuses = [client.post(VERIFY, {"code": wrong}).status_code for _ in range(10)]
    assert statuses == [HTTPStatus.OK] * 10  # LOGIN_USER_FAILURE_LIMIT: 10/m on the shipped defaults
    locked = client.post(VERIFY, {"code": code_for(enrolled)})  # even the right code, now
    assert locked.status_code == HTTPStatus.TOO_MANY_REQUESTS and int(locked["Retry-After"]) > 0
    assert client.get(ADMIN).status_code == HTTPStatus.FOUND
    # The same counter as the name's passwords: a correct password from a new browser waits too.
    assert password_login(Client()).status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_wrong_codes_at_enrolment_count_too(client, staff, required, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "3/h"
    password_login(client)
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=staff)
    for _ in range(3):
        assert client.post(SETUP, {"code": wrong_code_for(device)}).status_code == HTTPStatus.OK
    assert client.post(SETUP, {"code": code_for(device)}).status_code == HTTPStatus.TOO_MANY_REQUESTS
    device.refresh_from_db()
    assert not device.confirmed


def test_after_a_wrong_code_the_device_makes_the_next_try_wait_a_moment(client, enrolled, required):
    password_login(client)
    assert client.post(VERIFY, {"code": wrong_code_for(enrolled)}).status_code == HTTPStatus.OK
    soon = client.post(VERIFY, {"code": code_for(enrolled)})  # django-otp's backoff: 1 s after one failure
    assert soon.status_code == HTTPStatus.OK and "稍等" in soon.content.decode()
    time.sleep(1.1)
    assert client.post(VERIFY, {"code": code_for(enrolled, 1)})["Location"] == ADMIN


def test_the_code_fields_errors_are_shown_next_to_it(client, enrolled, required):
    password_login(client)
    page = client.post(VERIFY, {"code": ""})
    assert page.status_code == HTTPStatus.OK and "这个字段是必填项" in page.content.decode()


# --- what an unverified staff session reaches -------------------------------------------------------------------
@pytest.mark.parametrize(
    "url_name",
    ["admin:index", "staff_usage", "admin:course_job_changelist", "admin:accounts_user_changelist", "password_change"],
)
def test_staff_pages_refuse_a_session_without_its_second_factor(client, enrolled, required, url_name):
    password_login(client)
    response = client.get(reverse(url_name))
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith(VERIFY)
    posted = client.post(reverse("staff_stop_server"), {"username": "student9"})
    assert posted.status_code == HTTPStatus.FOUND and posted["Location"] == VERIFY


def test_the_admin_site_itself_refuses_an_unverified_staff_session(rf, enrolled, required):
    from django.contrib.sessions.backends.db import SessionStore

    request = rf.get(ADMIN)  # no middleware: the admin's own check
    request.user, request.session = enrolled.user, SessionStore()
    assert not admin.site.has_permission(request)
    assert isinstance(admin.site, otp.AdminSite)


def test_an_unverified_staff_session_may_still_log_out_and_switch_language(client, enrolled, required):
    password_login(client)
    assert client.post(reverse("set_language"), {"language": "en", "next": VERIFY})["Location"] == VERIFY
    assert "Two-step verification" in client.get(VERIFY).content.decode()
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


def test_a_staff_member_with_a_temporary_password_gives_the_code_before_choosing_a_password(client, enrolled, required):
    from accounts import setpassword

    temporary = setpassword.set_temporary_password(enrolled.user)
    client.post(reverse("login"), {"username": "teacher", "password": temporary})
    assert client.get(reverse("password_change"))["Location"].startswith(VERIFY)
    client.post(VERIFY, {"code": code_for(enrolled)})
    assert client.get(ADMIN)["Location"] == reverse("password_change")  # then the password, as for anyone
    assert client.get(reverse("password_change")).status_code == HTTPStatus.OK


def test_students_are_never_asked_for_a_code(client, student, required):
    response = password_login(client, "student9", next_url=reverse("course"))
    assert response["Location"] == reverse("course")
    assert client.get(reverse("course")).status_code == HTTPStatus.OK
    assert client.get(VERIFY)["Location"] == reverse("admin:index")  # nothing to verify: on to next
    assert not TOTPDevice.objects.exists()


def test_optional_mode_asks_only_staff_who_enrolled(client, staff, settings, make_staff):
    settings.STAFF_OTP = "optional"
    password_login(client)
    assert client.get(ADMIN).status_code == HTTPStatus.OK  # not enrolled: not asked
    TOTPDevice.objects.create(user=staff, name=otp.TOTP_NAME, confirmed=True)
    assert client.get(ADMIN)["Location"].startswith(VERIFY)  # enrolled: asked
    assert not TOTPDevice.objects.filter(user__username="wang").exists()
    make_staff("wang", "teacher")
    other = Client()
    password_login(other, "wang")
    assert other.get(ADMIN).status_code == HTTPStatus.OK


# --- the hub's authorization --------------------------------------------------------------------------------
def test_a_staff_login_through_the_hub_gets_no_code_until_the_second_factor(client, enrolled, required):
    call_command("ensure_hub_client", verbosity=0)
    verifier, challenge = pkce_pair()
    authorize = f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}"
    response = password_login(client, next_url=authorize)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == f"{VERIFY}?{urlencode({'next': authorize})}"
    assert not get_grant_model().objects.exists()
    # Asked directly, the authorize endpoint answers the same.
    assert client.get(AUTHORIZE, authorize_params(challenge))["Location"].startswith(VERIFY)
    assert not get_grant_model().objects.exists()
    # The code, then back to the same authorization, which now answers the hub with a code.
    back = client.post(VERIFY, {"code": code_for(enrolled), "next": authorize})
    assert back["Location"] == authorize
    answer = client.get(back["Location"])
    location = urlsplit(answer["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == django_settings.TOPOLOGY.hub_callback_url
    tokens = exchange(Client(), parse_qs(location.query)["code"][0], verifier)
    assert tokens.status_code == HTTPStatus.OK


def test_the_authorize_view_itself_refuses_an_unverified_staff_session(rf, enrolled, required):
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.oauth import AuthorizationView

    call_command("ensure_hub_client", verbosity=0)
    _, challenge = pkce_pair()
    request = rf.get(AUTHORIZE, authorize_params(challenge))  # no middleware, as inside a login's response
    request.user, request.session = enrolled.user, SessionStore()
    request._messages = FallbackStorage(request)
    response = AuthorizationView.as_view()(request)
    assert response.status_code == HTTPStatus.FOUND and response["Location"].startswith(VERIFY)
    assert not get_grant_model().objects.exists()


# --- resetting a lost phone ----------------------------------------------------------------------------------
def test_a_superuser_resets_a_teachers_lost_phone_in_the_admin(client, make_staff, required):
    teacher = make_staff("wang", "teacher")
    TOTPDevice.objects.create(user=teacher, name=otp.TOTP_NAME, confirmed=True)
    otp.make_backup_codes(teacher)
    chief = User.objects.create_superuser("chief", password=PASSWORD)
    chief_device = TOTPDevice.objects.create(user=chief, name=otp.TOTP_NAME, confirmed=True)
    password_login(client, "chief")
    client.post(VERIFY, {"code": code_for(chief_device)})
    changelist = reverse("admin:accounts_authenticator_changelist")
    page = client.get(changelist)
    assert page.status_code == HTTPStatus.OK and "wang" in page.content.decode()
    device = TOTPDevice.objects.get(user=teacher)
    response = client.post(changelist, {"action": "reset_devices", "_selected_action": [device.pk]})
    assert response.status_code == HTTPStatus.FOUND
    assert (
        not TOTPDevice.objects.filter(user=teacher).exists() and not StaticDevice.objects.filter(user=teacher).exists()
    )
    # The teacher's next login enrols again.
    other = Client()
    password_login(other, "wang")
    assert other.get(ADMIN)["Location"].startswith(SETUP)


@pytest.mark.parametrize("role", ["teacher", "ta"])
def test_teachers_and_tas_cannot_see_or_delete_anyones_devices(client, make_staff, role, settings):
    settings.STAFF_OTP = "optional"
    someone = make_staff("lilei", role)
    other = User.objects.create_superuser("chief", password=PASSWORD)
    device = TOTPDevice.objects.create(user=other, name=otp.TOTP_NAME, confirmed=True)
    client.force_login(someone)
    assert client.get(reverse("admin:accounts_authenticator_changelist")).status_code == HTTPStatus.FORBIDDEN
    delete = reverse("admin:accounts_authenticator_delete", args=[device.pk])
    assert client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert "身份验证器" not in client.get(ADMIN).content.decode()


def test_deleting_a_device_in_the_admin_resets_every_device_of_the_account(client, staff, make_staff, settings):
    settings.STAFF_OTP = "optional"
    teacher = make_staff("wang", "teacher")
    device = TOTPDevice.objects.create(user=teacher, name=otp.TOTP_NAME, confirmed=True)
    otp.make_backup_codes(teacher)
    client.force_login(staff)  # a superuser without a device, in optional mode
    response = client.post(reverse("admin:accounts_authenticator_delete", args=[device.pk]), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert otp.devices_of(teacher) == []


def test_reset_otp_command_for_the_last_superuser(staff, enrolled, capsys):
    call_command("reset_otp", "TEACHER", "--dry-run")
    assert "would remove 2 device(s) of teacher" in capsys.readouterr().out
    assert len(otp.devices_of(staff)) == 2
    call_command("reset_otp", "teacher")
    assert "removed 2 device(s) of teacher" in capsys.readouterr().out
    assert otp.devices_of(staff) == []
    call_command("reset_otp", "teacher")  # idempotent
    assert "nothing to reset" in capsys.readouterr().out
    with pytest.raises(CommandError, match="^no such account: nobody$"):
        call_command("reset_otp", "nobody")


# --- the events a record hears -------------------------------------------------------------------------------
def test_enrolment_verification_failures_and_resets_send_their_signals(
    client, staff, required, django_capture_on_commit_callbacks
):
    heard = []

    def listen(name):
        def receiver(sender, user, **kwargs):
            heard.append(
                (name, user.username, {k: v for k, v in kwargs.items() if k in {"method", "locked", "devices"}})
            )

        return receiver

    receivers = {
        name: listen(name) for name in ("second_factor_enrolled", "second_factor_verified", "second_factor_failed")
    }
    receivers["second_factor_reset"] = listen("second_factor_reset")
    for name, receiver in receivers.items():
        getattr(events, name).connect(receiver)
    try:
        password_login(client)
        client.get(SETUP)
        device = TOTPDevice.objects.get(user=staff)
        client.post(SETUP, {"code": wrong_code_for(device)})
        time.sleep(1.1)
        with django_capture_on_commit_callbacks(execute=True):  # sent once the change is committed
            client.post(SETUP, {"code": code_for(device)})
            call_command("reset_otp", "teacher")
    finally:
        for name, receiver in receivers.items():
            getattr(events, name).disconnect(receiver)
    assert heard == [
        ("second_factor_failed", "teacher", {"locked": False}),
        ("second_factor_verified", "teacher", {"method": "totp"}),
        ("second_factor_enrolled", "teacher", {}),
        ("second_factor_reset", "teacher", {"devices": 2}),
    ]


# --- the setting -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "optional"),
        ({"STAFF_OTP": "required"}, "required"),
        ({"APP_PROFILE": "prod"}, "required"),
        ({"APP_PROFILE": "prod", "STAFF_OTP": "Required"}, "required"),
    ],
)
def test_staff_otp_is_optional_in_dev_and_required_in_prod(values, expected):
    assert Config(Env(values)).accounts.staff_otp == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"APP_PROFILE": "prod", "STAFF_OTP": "optional"}, "STAFF_OTP=optional is for dev only"),
        ({"STAFF_OTP": "sometimes"}, "STAFF_OTP must be required or optional"),
    ],
)
def test_prod_refuses_an_optional_second_factor(values, message):
    with pytest.raises(EnvError, match=message):
        Config(Env(values)).accounts  # noqa: B018
