"""In Chromium against the live portal (gunicorn, dev profile) configured with EMAIL_URL pointing at a real
SMTP server on loopback: a student who forgot the password asks for a mail, opens its link, sets a new
password and logs in with it; with the mail server gone, the student is told so and staff see it."""

from __future__ import annotations

import re

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from tests.live import PortalProcess, free_port

PASSWORD = "Cfps-analysis-2026"
NEW_PASSWORD = "Another-good-passphrase-7"


class Inbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted"


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    if controller._thread is not None:  # the outage test stops it itself
        controller.stop()


@pytest.fixture(scope="module")
def mail_portal(tmp_path_factory, smtp):
    controller, _ = smtp
    env = {"EMAIL_URL": f"smtp://127.0.0.1:{controller.port}", "DEFAULT_FROM_EMAIL": "noreply@cfps.test"}
    with PortalProcess(tmp_path_factory.mktemp("mail-portal"), extra_env=env) as portal:
        script = (
            "from accounts.models import User\n"
            f"User.objects.create_user(username='wangfang', email='wangfang@example.edu.cn', password={PASSWORD!r})\n"
            f"User.objects.create_superuser(username='teacher', password={PASSWORD!r})\n"
        )
        portal.manage("shell", "-c", script)
        yield portal


def _decoded(message: bytes) -> str:
    import email
    from email import policy

    parsed = email.message_from_bytes(message, policy=policy.default)
    return parsed.get_body(("plain",)).get_content()


def test_forgotten_password_is_reset_by_mail_in_chinese(mail_portal, smtp, page, screenshot):
    _, inbox = smtp
    page.goto(mail_portal.url("/accounts/login/"))
    page.get_by_role("link", name="忘记密码？").click()
    page.get_by_label("电子邮箱地址").fill("wangfang@example.edu.cn")
    screenshot(page, "01-reset-form")
    page.get_by_role("button", name="发送链接").click()
    expect(page.get_by_test_id("reset-sent")).to_contain_text("请查收邮件")
    screenshot(page, "02-reset-sent")

    body = _decoded(inbox.messages[-1])
    assert "wangfang" in body and "设置新密码" in body
    link = re.search(r"http://\S+/accounts/reset/\S+/", body).group(0)
    assert link.startswith(mail_portal.url("/accounts/reset/"))  # PUBLIC_URL: the portal's own origin
    page.goto(link)
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("新密码确认", exact=True).fill(NEW_PASSWORD)
    screenshot(page, "03-new-password")
    page.get_by_role("button", name="设置密码").click()
    expect(page.locator("h1")).to_have_text("密码已设置")

    page.get_by_role("link", name="登录").last.click()
    page.get_by_label("用户名").fill("wangfang")
    page.get_by_label("密码").fill(NEW_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".who")).to_have_text("wangfang")


def test_with_the_mail_server_down_the_student_is_told_and_staff_see_it(mail_portal, smtp, page, screenshot):
    controller, _ = smtp
    controller.stop()
    page.goto(mail_portal.url("/accounts/password_reset/"))
    page.get_by_label("电子邮箱地址").fill("wangfang@example.edu.cn")
    page.get_by_role("button", name="发送链接").click()
    expect(page.locator(".form-errors")).to_contain_text("邮件未能发出")
    screenshot(page, "01-mail-failed")

    page.goto(mail_portal.url("/admin/login/?next=/admin/staff/mailfailure/"))
    page.fill("#id_username", "teacher")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#result_list")).to_contain_text("wangfang@example.edu.cn")
    screenshot(page, "02-admin-failed-mails")
