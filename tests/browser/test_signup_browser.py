"""End to end in a real browser: a student signs up with an invite code on the live portal.

Runs the real stack (gunicorn, dev profile, collectstatic + whitenoise, compiled translations) from
tests/live.py, driven by Debian's Chromium. Screenshots land in test-results/<test name>/.
"""

from __future__ import annotations

import gzip
import re

from playwright.sync_api import Page, expect

PASSWORD = "Cfps-analysis-2026"
CJK = re.compile(r"[\u4e00-\u9fff]")


def new_invite(portal, max_uses: int = 1) -> str:
    """`create_invite` prints the code alone on its last line."""
    out = portal.manage("create_invite", "--max-uses", str(max_uses)).stdout
    code = out.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"[A-Z0-9-]{4,64}", code), f"unexpected create_invite output: {out!r}"
    return code


def fill_signup(page: Page, username: str, code: str) -> None:
    """Fill the sign-up form through its Chinese labels, as a student would."""
    page.get_by_label("用户名", exact=True).fill(username)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_label("密码确认", exact=True).fill(PASSWORD)
    page.get_by_label("邀请码", exact=True).fill(code)


def submit_signup(page: Page):
    """Click 创建账号 and return the response to the form POST (the document, before any redirect)."""
    with page.expect_response(lambda r: r.request.method == "POST" and "/accounts/signup/" in r.url) as info:
        page.get_by_role("button", name="创建账号", exact=True).click()
    page.wait_for_load_state()
    return info.value


def assert_fits_phone_width(page: Page) -> None:
    """Nothing may stick out sideways on a phone: no horizontal scrolling."""
    screen = page.viewport_size["width"]
    assert screen == 390, "this check is meant for the phone viewport"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= screen, f"{page.url} is {width}px wide on a {screen}px phone screen"


def test_student_signs_up_with_invite_code_in_chinese_and_lands_logged_in(
    live_portal, phone_page, screenshot, doc_screenshot
):
    page = phone_page
    code = new_invite(live_portal)

    page.goto(live_portal.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert_fits_phone_width(page)
    screenshot(page, "00-home-logged-out-phone")
    # The big button in the page body, not the header link.
    page.locator("main").get_by_role("link", name="注册", exact=True).click()
    expect(page).to_have_url(live_portal.url("/accounts/signup/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("注册")

    assert_fits_phone_width(page)
    fill_signup(page, "xiaoming", code.lower())  # codes are case-insensitive for students
    screenshot(page, "01-signup-form-filled-phone")
    doc_screenshot(page, "student-signup")
    response = submit_signup(page)

    assert response.status == 302, f"sign-up POST answered {response.status}, expected a redirect"
    expect(page).to_have_url(live_portal.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    header = page.locator("header")
    expect(header.locator(".who")).to_have_text("xiaoming")
    expect(header.get_by_role("button", name="退出登录")).to_be_visible()
    expect(header.get_by_role("link", name="注册", exact=True)).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_contain_text("CFPS")
    assert CJK.search(page.locator("h1").inner_text()), "home heading is not in Chinese"
    assert_fits_phone_width(page)
    screenshot(page, "02-home-logged-in-phone")


def test_used_up_code_error_shows_beside_the_invite_field(live_portal, new_context, screenshot):
    code = new_invite(live_portal, max_uses=1)

    first = new_context().new_page()
    first.goto(live_portal.url("/accounts/signup/"))
    fill_signup(first, "first-user", code)
    assert submit_signup(first).status == 302
    expect(first.locator("header .who")).to_have_text("first-user")

    page = new_context().new_page()
    page.goto(live_portal.url("/accounts/signup/"))
    fill_signup(page, "second-user", code)
    response = submit_signup(page)

    assert response.status == 200, f"rejected sign-up answered {response.status}, expected the form again"
    expect(page).to_have_url(live_portal.url("/accounts/signup/"))
    invite_field = page.locator(".field", has=page.locator("#id_invite_code"))
    errors = invite_field.locator("#id_invite_code_error")
    expect(errors).to_be_visible()
    expect(errors).to_have_text("该邀请码的名额已用完，请向老师索取新的邀请码。")
    expect(invite_field).to_have_class(re.compile(r"\bhas-error\b"))
    # Only the invite code is wrong: no error on the other fields, and no account was created.
    expect(page.locator(".errors")).to_have_count(1)
    expect(page.locator("header .who")).to_have_count(0)
    # "Beside": directly under the input, not somewhere else on the page.
    field_box = page.locator("#id_invite_code").bounding_box()
    error_box = errors.bounding_box()
    gap = error_box["y"] - (field_box["y"] + field_box["height"])
    assert 0 <= gap <= 24, f"error is {gap:.0f}px below the invite code input"
    assert abs(error_box["x"] - field_box["x"]) <= 24, "error is not aligned with the invite code input"
    screenshot(page, "used-up-code-error")


def test_language_switcher_changes_page_to_english(live_portal, page, screenshot):
    page.goto(live_portal.url("/accounts/signup/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("heading", level=1)).to_have_text("注册")
    footer = page.locator("footer")
    screenshot(page, "01-chinese")

    # A reader who cannot read Chinese must be able to find their language: it is named in English.
    footer.get_by_role("button", name="English", exact=True).click()
    page.wait_for_load_state()
    expect(page).to_have_url(live_portal.url("/accounts/signup/"))  # stays on the same page
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign up")
    expect(page.get_by_label("Invite code", exact=True)).to_be_visible()
    expect(footer.get_by_role("button", name="English", exact=True)).to_be_disabled()
    screenshot(page, "02-english")

    # The choice sticks for the next page.
    page.goto(live_portal.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main").get_by_role("link", name="Sign up", exact=True)).to_be_visible()

    footer.get_by_role("button", name="简体中文", exact=True).click()
    page.wait_for_load_state()
    expect(page).to_have_url(live_portal.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("main").get_by_role("link", name="注册", exact=True)).to_be_visible()
    screenshot(page, "03-back-to-chinese")


def _load_and_measure(context, url: str) -> list[dict]:
    """Load `url` in a fresh page; return one row per network request with sizes in bytes."""
    finished = []
    context.on("requestfinished", lambda req: finished.append(req))
    context.on("requestfailed", lambda req: finished.append(req))
    page = context.new_page()
    page.goto(url, wait_until="networkidle")
    rows = []
    for req in finished:
        response = req.response()
        body = response.body() if response is not None else b""
        sizes = req.sizes()
        rows.append(
            {
                "url": req.url,
                "status": response.status if response is not None else "failed",
                "encoding": (response.headers.get("content-encoding", "-") if response is not None else "-"),
                "raw": len(body),
                "wire": sizes["responseBodySize"] + sizes["responseHeadersSize"],
                "gzip6": len(gzip.compress(body, compresslevel=6)),
            }
        )
    return rows


def test_login_page_loads_at_most_three_requests_under_15kb_gzipped(live_portal, new_context):
    budget = 15 * 1024
    report = []
    over = []
    for path in ("/accounts/login/", "/accounts/signup/"):
        # A fresh context per page: empty cache, so the stylesheet is counted every time.
        rows = _load_and_measure(new_context(), live_portal.url(path))
        total_gzip = sum(row["gzip6"] for row in rows)
        report.append(f"{path}: {len(rows)} requests, {total_gzip} B gzipped (budget {budget} B)")
        for row in rows:
            report.append(
                f"  {row['status']} {row['url']}  body {row['raw']} B, on the wire {row['wire']} B "
                f"({row['encoding']}), gzip -6 {row['gzip6']} B"
            )
        assert rows, f"no requests recorded for {path}"
        assert all(row["status"] == 200 for row in rows), f"{path}: not every request answered 200: {rows}"
        assert all(row["url"].startswith(live_portal.base_url) for row in rows), rows
        if len(rows) > 3 or total_gzip >= budget:
            over.append(path)
    print("\n" + "\n".join(report))
    assert not over, "page weight budget exceeded:\n" + "\n".join(report)
