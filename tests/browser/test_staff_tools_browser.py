"""A teacher in a real browser: import a 200-row roster exported from Excel (GB18030, two bad rows), print the
set-password slips and 30 invite codes; a student opens a slip's link, sets a password and lands logged in.
Deactivating asks first, and the deactivated student is told why they cannot log in; a weak password's error
shows under 密码, where the student typed it.

Runs against the live portal (tests/live.py) in Debian's Chromium; screenshots (Chinese, A4 print view) land
in test-results/<test name>/.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Page, expect

PASSWORD = "Cfps-analysis-2026"
STUDENT_PASSWORD = "Panel-survey-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞"


@pytest.fixture(scope="module")
def teacher(live_portal):
    live_portal.manage(
        "shell",
        "-c",
        f"from accounts.models import User; User.objects.create_superuser('laoshi', password={PASSWORD!r})",
    )
    return "laoshi"


def log_in(page: Page, portal, username: str, password: str) -> None:
    page.goto(portal.url("/accounts/login/"))
    page.get_by_label("用户名", exact=True).fill(username)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_load_state()


def excel_roster(n: int = 200) -> bytes:
    """What Excel on Chinese Windows saves as "CSV": GB18030, CRLF, Chinese header, two bad rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["用户名", "姓名", "邮箱", "班级"])
    for i in range(n - 2):
        name = SURNAMES[i % 20] + GIVEN[(i // 20) % 20]
        writer.writerow([f"s2026{i:03d}", name, f"s2026{i:03d}@example.edu.cn", f"经济学{i % 4 + 1}班"])
    writer.writerow(["王 小明", "王小明", "", "经济学1班"])  # a space and Chinese: not a username
    writer.writerow(["S2026000", "王伟", "", "经济学1班"])  # the first student again, in capitals
    return out.getvalue().encode("gb18030")


def test_teacher_imports_an_excel_roster_previews_it_and_prints_the_slips(
    live_portal, teacher, page, new_context, screenshot, doc_screenshot
):
    log_in(page, live_portal, teacher, PASSWORD)
    page.goto(live_portal.url("/admin/accounts/user/"))
    page.get_by_role("link", name="导入名单").click()
    expect(page.get_by_role("heading", name="导入班级名单")).to_be_visible()
    page.get_by_label("名单文件").set_input_files(
        {"name": "经济学名单.csv", "mimeType": "text/csv", "buffer": excel_roster()}
    )
    page.get_by_label("同时把所有人加入此组").fill("2026秋季")
    screenshot(page, "01-upload")
    page.get_by_role("button", name="预览").click()

    summary = page.locator("#roster-summary")
    expect(summary).to_contain_text("新建 198 个")
    expect(summary).to_contain_text("跳过 2 个")
    skipped = page.locator("#roster-preview tr.skipped")
    expect(skipped).to_have_count(2)
    expect(skipped.nth(0)).to_contain_text("用户名无效")
    expect(skipped.nth(1)).to_contain_text("与文件第 2 行的用户名重复")
    expect(page.locator("#roster-preview tbody tr").first).to_have_class("skipped")  # problems on top
    expect(page.locator("#roster-preview tr.created").first).to_contain_text("王伟")
    skipped.nth(0).scroll_into_view_if_needed()
    screenshot(page, "02-preview")
    doc_screenshot(page, "teacher-roster-preview")

    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator("#roster-summary")).to_contain_text("新建 198 个")
    screenshot(page, "03-imported")
    page.locator("#print-slips").click()

    slips = page.locator("section.slip")
    expect(slips).to_have_count(198)
    first = slips.first
    expect(first.locator(".username")).to_have_text("s2026000")
    expect(first).to_contain_text("王伟")
    expect(first).to_contain_text(live_portal.url("/"))
    assert first.locator("svg").count() == 1, "no QR code on the slip"
    screenshot(page, "04-slips-screen")
    doc_screenshot(page, "teacher-set-password-slips")
    page.emulate_media(media="print")
    expect(page.locator(".toolbar")).to_be_hidden()
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    screenshot(page, "05-slips-print")
    pdf = page.pdf(format="A4")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages == 25, f"{pages} A4 pages for 198 slips, expected 8 to a page"

    # A student opens the first slip's link in their own browser.
    link = first.locator(".link").inner_text().strip()
    student = new_context().new_page()
    student.goto(link)
    expect(student.get_by_role("heading", level=1)).to_have_text("设置你的密码")
    expect(student.locator("strong.username")).to_have_text("s2026000")
    assert "/set-password/" in student.url and link.rsplit("/", 2)[-2] not in student.url, "token left in the URL"
    student.get_by_label("新密码", exact=True).fill(STUDENT_PASSWORD)
    student.get_by_label("新密码确认", exact=True).fill(STUDENT_PASSWORD)
    screenshot(student, "06-student-chooses-password")
    doc_screenshot(student, "student-set-password")
    student.get_by_role("button", name="设置密码并登录").click()
    expect(student).to_have_url(live_portal.url("/"))
    expect(student.locator("header .who")).to_have_text("s2026000")
    expect(student.locator("main").get_by_role("link", name="打开 JupyterLab")).to_be_visible()
    screenshot(student, "07-student-logged-in")

    # The link worked once.
    again = new_context().new_page()
    again.goto(link)
    expect(again.get_by_role("heading", level=1)).to_have_text("此链接无法使用")

    # The user list shows the imported class, with their group to filter by.
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_portal.url("/admin/accounts/user/?q=s2026"))
    expect(page.locator("#result_list")).to_contain_text("s2026000")
    expect(page.locator("#changelist-filter")).to_contain_text("2026秋季")
    doc_screenshot(page, "teacher-user-list")


def test_teacher_prints_thirty_invite_codes(live_portal, teacher, page, screenshot, doc_screenshot):
    codes = live_portal.manage("create_invite", "--count", "30", "--max-uses", "1", "-v", "0").stdout.split()
    assert len(codes) == 30
    log_in(page, live_portal, teacher, PASSWORD)
    page.goto(live_portal.url("/admin/accounts/invitecode/"))
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option("print_invite_slips")
    page.get_by_role("button", name=re.compile("执行|Go")).click()
    slips = page.locator("section.slip")
    expect(slips).to_have_count(30)
    shown = set(page.locator(".slip .code").all_inner_texts())
    assert shown == set(codes)
    expect(slips.first).to_contain_text(live_portal.url("/accounts/signup/"))
    screenshot(page, "01-code-slips")
    doc_screenshot(page, "teacher-invite-slips")
    page.emulate_media(media="print")
    screenshot(page, "02-code-slips-print")


def test_teacher_sets_a_temporary_password_and_the_student_must_change_it(
    live_portal, teacher, page, new_context, screenshot
):
    live_portal.manage(
        "shell",
        "-c",
        "from accounts.models import User; User.objects.create_user('forgetful', password='Lost-it-2026')",
    )
    log_in(page, live_portal, teacher, PASSWORD)
    page.goto(live_portal.url("/admin/accounts/user/?q=forgetful"))
    page.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("set_temporary_passwords")
    page.get_by_role("button", name=re.compile("执行|Go")).click()
    expect(page.get_by_role("heading", name="设置临时密码")).to_be_visible()
    screenshot(page, "01-confirm")
    page.get_by_role("button", name="设置临时密码").click()
    slip = page.locator("section.slip")
    expect(slip).to_have_count(1)
    expect(slip.locator(".username")).to_have_text("forgetful")
    temporary = slip.locator(".password").inner_text().strip()
    screenshot(page, "02-temporary-password-slip")

    student = new_context().new_page()
    log_in(student, live_portal, "forgetful", temporary)
    expect(student).to_have_url(live_portal.url("/accounts/password_change/"))
    expect(student.locator(".messages")).to_contain_text("临时密码")
    student.goto(live_portal.url("/"))  # every other page sends the student back
    expect(student).to_have_url(live_portal.url("/accounts/password_change/"))
    # They just proved the temporary password by logging in: it is not asked again.
    expect(student.get_by_label("旧密码", exact=True)).to_have_count(0)
    screenshot(student, "03-must-change-password")
    student.get_by_label("新密码", exact=True).fill(STUDENT_PASSWORD)
    student.get_by_label("新密码确认", exact=True).fill(STUDENT_PASSWORD)
    student.get_by_role("button", name="修改密码").click()
    student.goto(live_portal.url("/"))
    expect(student).to_have_url(live_portal.url("/"))
    expect(student.locator("header .who")).to_have_text("forgetful")
    screenshot(student, "04-home-after-change")


def test_teacher_confirms_a_deactivation_and_the_student_is_told_to_ask_the_teacher(
    live_portal, teacher, page, new_context, screenshot
):
    live_portal.manage(
        "shell",
        "-c",
        f"from accounts.models import User; User.objects.create_user('qianqi-26', first_name='钱七', "
        f"password={STUDENT_PASSWORD!r})",
    )
    log_in(page, live_portal, teacher, PASSWORD)
    page.goto(live_portal.url("/admin/accounts/user/?q=qianqi-26"))
    expect(page.locator("#result_list")).to_contain_text("钱七")  # 姓名 beside 学号
    page.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("deactivate_users")
    page.get_by_role("button", name=re.compile("执行|Go")).click()

    expect(page.get_by_role("heading", name="停用用户")).to_be_visible()
    expect(page.locator("#content")).to_contain_text("文件会保留")
    confirm = page.get_by_role("button", name="停用", exact=True)
    expect(confirm).to_have_class(re.compile("deletelink"))  # drawn as a dangerous button
    screenshot(page, "01-confirm-deactivation")
    page.get_by_role("link", name="取消").click()  # backing out changes nothing
    expect(page.locator("#result_list")).to_contain_text("qianqi-26")
    still = "from accounts.models import User; print('active:', User.objects.get(username='qianqi-26').is_active)"
    assert "active: True" in live_portal.manage("shell", "-c", still).stdout

    page.goto(live_portal.url("/admin/accounts/user/?q=qianqi-26"))
    page.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("deactivate_users")
    page.get_by_role("button", name=re.compile("执行|Go")).click()
    page.get_by_role("button", name="停用", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("已停用 1 个用户。")
    screenshot(page, "02-deactivated")

    student = new_context().new_page()
    log_in(student, live_portal, "qianqi-26", STUDENT_PASSWORD)
    expect(student.locator(".form-errors")).to_have_text("此账号已被停用，请联系老师。")
    expect(student.locator("header .who")).to_have_count(0)
    screenshot(student, "03-student-told-deactivated")
    log_in(student, live_portal, "qianqi-26", "Not-the-password-1")
    expect(student.locator(".form-errors")).to_have_text("用户名或密码不正确。注意密码区分大小写。")
    screenshot(student, "04-wrong-password-learns-nothing")


def test_a_weak_password_is_refused_under_the_password_field(live_portal, page, screenshot):
    code = live_portal.manage("create_invite", "-v", "0").stdout.split()[-1]
    page.goto(live_portal.url("/accounts/signup/"))
    page.get_by_label("用户名", exact=True).fill("张三")
    page.get_by_label("密码", exact=True).fill("a1b2")
    page.get_by_label("密码确认", exact=True).fill("a1b2")
    page.get_by_label("邀请码", exact=True).fill(code)
    page.get_by_role("button", name="创建账号", exact=True).click()

    username_error = page.locator("#id_username_error")
    expect(username_error).to_have_text("用户名只能使用 a-z、0-9、“-”和“_”（不能有汉字、空格或其他符号）。")
    error = page.locator("#id_password1_error")
    expect(error).to_contain_text("密码太短")
    expect(page.locator("#id_password2_error")).to_have_count(0)
    # On the page, the error sits under the 密码 box and above the 密码确认 one.
    password = page.get_by_label("密码", exact=True).bounding_box()
    confirmation = page.get_by_label("密码确认", exact=True).bounding_box()
    box = error.bounding_box()
    assert password["y"] + password["height"] <= box["y"] < confirmation["y"], (password, box, confirmation)
    expect(page.get_by_label("密码", exact=True)).to_have_attribute("aria-invalid", "true")
    screenshot(page, "01-weak-password-under-password")
