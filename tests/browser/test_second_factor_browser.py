"""A new teacher's first admin login with STAFF_OTP=required, in Debian's Chromium against the live portal: the
admin asks to enrol an authenticator (QR code on screen), the test reads the secret off the page and computes the
code from it as an authenticator app would, the backup codes are shown once; after logging out, the next login
asks for a code. And a student's 这是公共电脑 login: a session cookie without expiry, ended when idle.

Screenshots for the guides: docs/images/teacher-otp-setup.png, teacher-otp-backup-codes.png, teacher-otp-verify.png
and student-login-shared-pc.png; the rest in test-results/<test name>/.
"""

from __future__ import annotations

import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.live import PortalProcess

PASSWORD = "Cfps-analysis-2026"

SETUP = f"""
from accounts.models import StaffRole, User
teacher = User.objects.create_user('laoshi-wang', password={PASSWORD!r}, is_staff=True, first_name='王老师')
teacher.groups.add(StaffRole.objects.get(key='teacher').group)
User.objects.create_user('s2026001', password={PASSWORD!r}, first_name='王伟')
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    env = {"STAFF_OTP": "required", "ADMIN_PASSWORD": PASSWORD}
    with PortalProcess(tmp_path_factory.mktemp("otp-portal"), extra_env=env) as portal:
        portal.manage("bootstrap")
        portal.manage("shell", "-c", SETUP)
        yield portal


def code_from_secret(secret: str, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for the key typed in from the page (base32, spaces ignored)."""
    key = secret.replace(" ", "").upper()
    totp = TOTP(b32decode(key + "=" * (-len(key) % 8)), step=30, t0=0, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_new_teacher_enrols_at_the_first_admin_login_and_gives_a_code_at_the_next(
    portal, new_context, screenshot, doc_screenshot
):
    page = new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.goto(portal.url("/admin/"))
    page.locator("#id_username").fill("laoshi-wang")  # Django's admin login page
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()

    # Straight to the enrolment page: a QR code and the key as text, nothing of the admin yet.
    expect(page.get_by_role("heading", name="设置两步验证")).to_be_visible()
    qr = page.get_by_test_id("otp-qr")
    expect(qr.locator("svg")).to_be_visible()
    box = qr.bounding_box()
    assert box["width"] >= 150 and box["height"] >= 150, box
    secret = page.get_by_test_id("otp-secret").inner_text()
    assert len(secret.replace(" ", "")) == 32, secret
    doc_screenshot(page, "teacher-otp-setup")
    screenshot(page, "01-setup")
    assert page.goto(portal.url("/admin/usage/")).url.startswith(portal.url("/accounts/otp/setup/"))

    # A wrong code first: refused next to the field.
    page.get_by_label("验证码").fill("000000" if code_from_secret(secret) != "000000" else "111111")
    page.get_by_role("button", name="确认").click()
    expect(page.locator(".errors")).to_contain_text("验证码不正确")
    time.sleep(1.1)  # the device's backoff after one wrong code
    page.get_by_label("验证码").fill(code_from_secret(secret))
    page.get_by_role("button", name="确认").click()

    expect(page.get_by_role("heading", name="你的备用码")).to_be_visible()
    codes = page.get_by_test_id("backup-codes").locator("li").all_inner_texts()
    assert len(codes) == 10 and all(len(code) == 9 and code[4] == "-" for code in codes), codes
    expect(page.get_by_role("button", name="打印")).to_be_visible()
    doc_screenshot(page, "teacher-otp-backup-codes")
    page.get_by_role("link", name="已保存，继续").click()
    page.wait_for_url(portal.url("/admin/usage/"))  # on to the last page asked for
    page.goto(portal.url("/admin/"))
    expect(page.get_by_role("table", name="教师工具")).to_contain_text("使用情况")
    screenshot(page, "02-admin")
    page.goto(portal.url("/accounts/otp/backup-codes/"))  # shown once: now nothing but the way on
    page.wait_for_url(portal.url("/admin/"))

    # Log out (the portal's POST logout; it goes on to the hub, which this portal runs without).
    page.goto(portal.url("/"))
    page.get_by_role("button", name="退出登录").click()
    page.goto(portal.url("/accounts/login/?next=/admin/"))
    page.get_by_label("用户名", exact=True).fill("laoshi-wang")
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()

    # The code, not the QR code again; the code of the next 30 s (the last one was used at enrolment).
    expect(page.get_by_role("heading", name="两步验证")).to_be_visible()
    expect(page.get_by_test_id("otp-qr")).to_have_count(0)
    doc_screenshot(page, "teacher-otp-verify")
    page.get_by_label("验证码").fill(code_from_secret(secret, 1))
    page.get_by_role("button", name="验证").click()
    expect(page.get_by_role("table", name="教师工具")).to_contain_text("使用情况")
    screenshot(page, "03-admin-again")


def test_a_shared_pc_login_has_a_browser_session_cookie_and_ends_when_idle(portal, new_context, doc_screenshot):
    context = new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.goto(portal.url("/accounts/login/"))
    box = page.get_by_label("这是公共电脑")
    expect(box).not_to_be_checked()
    page.get_by_label("用户名", exact=True).fill("s2026001")
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    box.check()
    doc_screenshot(page, "student-login-shared-pc")
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator(".who")).to_have_text("s2026001")
    session = next(c for c in context.cookies() if c["name"] == "cfps_session")
    assert session["expires"] == -1  # no expiry: gone when the browser closes

    # Idle past SHARED_PC_IDLE_MINUTES (the session's last-request time moved back, instead of waiting).
    portal.manage(
        "shell",
        "-c",
        "import time\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "from accounts import sessions\n"
        f"s = SessionStore(session_key={session['value']!r})\n"
        "s[sessions.SEEN_KEY] = int(time.time()) - 16 * 60 - 61\n"
        "s.save()\n",
    )
    page.reload()
    expect(page.locator(".messages")).to_contain_text("已自动退出登录")
    expect(page.get_by_role("navigation").get_by_role("link", name="登录")).to_be_visible()
    expect(page.locator(".who")).to_have_count(0)
