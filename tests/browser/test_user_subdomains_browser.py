"""One origin per student, the default (issue 20): each student's server on a host of its own,
`<name>.<hub host>`, so a student's page reaches neither the hub nor another student with a visitor's cookies.
In the embedded set-up the hub is `localhost`, so a student's server is `<name>.localhost`, which Chromium
sends to loopback itself. Here: the way there from the portal, logging out on a shared PC, and the hub's own
pages (which may no longer be framed by anything) still working.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e import flows
from tests.live import Stack

LAB_TIMEOUT = 90_000
NAVIGATION_TIMEOUT = 30_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("subdomain-stack"), proxy="python") as s:  # the defaults, as ./run.sh
        yield s


def log_in_at_the_portal(stack: Stack, page, username: str) -> None:
    page.goto(stack.url("/accounts/login/"), timeout=NAVIGATION_TIMEOUT)
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(flows.PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("header .who")).to_have_text(username)


def open_jupyterlab(stack: Stack, page) -> None:
    page.get_by_role("link", name="打开 JupyterLab").click()
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)


def test_each_students_jupyterlab_is_on_a_host_of_its_own(stack, new_context, screenshot):
    student = flows.unique_username("sub")
    flows.create_user(stack, student)
    page = new_context(locale="zh-CN").new_page()
    log_in_at_the_portal(stack, page, student)
    open_jupyterlab(stack, page)
    screenshot(page, "lab-on-its-own-host")
    url = urlsplit(page.url)
    assert url.hostname == f"{student}.localhost", page.url
    assert url.path.startswith(f"/jupyter/user/{student}/lab"), page.url
    assert page.url.startswith(stack.user_url(student, "lab")), (page.url, stack.user_url(student))
    # Neither the portal's cookies nor the hub's reach the student's host: it sees only its own.
    cookies = page.evaluate("document.cookie")
    assert "cfps_" not in cookies and "jupyterhub-hub-login" not in cookies, cookies
    hub_cookies = [c for c in page.context.cookies() if c["name"].startswith("jupyterhub-hub-login")]
    assert hub_cookies and all(c["domain"] == "localhost" for c in hub_cookies), hub_cookies
    # The student's server is not served under the hub's own host: the hub only sends the browser on.
    other = page.context.request.get(stack.hub_url(f"/jupyter/user/{student}/api/status"), max_redirects=0)
    assert other.status != 200 or "started" not in other.text(), other.status


@pytest.mark.parametrize("where", ["portal", "jupyterlab"])
def test_after_logging_out_the_next_person_at_the_pc_cannot_open_the_students_jupyterlab(
    stack, new_context, screenshot, where
):
    student = flows.unique_username("pc")
    flows.create_user(stack, student)
    page = new_context(locale="zh-CN").new_page()
    log_in_at_the_portal(stack, page, student)
    open_jupyterlab(stack, page)
    lab = page.url
    if where == "portal":  # the portal's header, in another tab of the same browser
        page = page.context.new_page()
        page.goto(stack.url("/"), timeout=NAVIGATION_TIMEOUT)
    # Both end at the portal's end-session endpoint, then its home page, logged out.
    with page.expect_response(lambda r: urlsplit(r.url).path == "/o/logout/", timeout=NAVIGATION_TIMEOUT):
        if where == "jupyterlab":  # File → Log Out
            page.locator("#jp-menu-panel .lm-MenuBar-item").first.click()
            page.locator('.lm-Menu .lm-Menu-item[data-command="hub:logout"]').click()
        else:
            page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(stack.url("/"), timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("header .who")).to_have_count(0)

    # The same browser, the next person: the student's JupyterLab (its cookie is still in the browser, on the
    # student's host) asks for a login at the portal. (tests/e2e/test_origins.py asks its API too.)
    assert [c for c in page.context.cookies() if c["domain"] == f"{student}.localhost"], page.context.cookies()
    page.goto(lab, timeout=NAVIGATION_TIMEOUT)
    expect(page).to_have_url(re.compile("^" + re.escape(stack.url("/accounts/login/"))), timeout=NAVIGATION_TIMEOUT)
    screenshot(page, "next-person-at-the-pc")


def test_the_hubs_own_pages_work_and_may_not_be_framed(stack, new_context, screenshot):
    student, teacher = flows.unique_username("own"), flows.unique_username("teacher")
    flows.create_user(stack, student)
    flows.create_user(stack, teacher, role="teacher")

    page = new_context(locale="zh-CN").new_page()
    log_in_at_the_portal(stack, page, student)
    response = page.goto(stack.url("/jupyter/hub/token"), timeout=NAVIGATION_TIMEOUT)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"], response.headers
    page.wait_for_load_state("networkidle")  # the page's script handles the form (else it submits as a GET)
    page.get_by_role("button", name="申请新的 API 令牌").click()
    expect(page.locator("#token-result")).to_have_text(re.compile(r"\w{20,}"), timeout=NAVIGATION_TIMEOUT)
    screenshot(page, "token-page")
    page.goto(stack.url(f"/jupyter/hub/spawn/{student}"), timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)
    assert urlsplit(page.url).hostname == f"{student}.localhost", page.url

    # Staff: the hub's admin page lists the student and their running server (the staff role's rights).
    staff_page = new_context(locale="zh-CN").new_page()
    log_in_at_the_portal(stack, staff_page, teacher)
    staff_page.goto(stack.url("/jupyter/hub/admin"), timeout=NAVIGATION_TIMEOUT)
    row = staff_page.locator("tr", has_text=student)
    expect(row.first).to_be_visible(timeout=NAVIGATION_TIMEOUT)
    expect(row.first.get_by_role("button", name=re.compile("停止服务器|Stop Server"))).to_be_visible()
    screenshot(staff_page, "admin-page-as-staff")
