"""End to end in a real browser, through the whole stack: portal sign-up, then JupyterLab without a second login.

The `stack` fixture runs everything ./run.sh runs (gunicorn, JupyterHub, the Python proxy, the embedded
spawner) on free loopback ports, with its state in a temporary folder (tests/live.py). Chromium reaches it
only through the proxy, on one origin, like a student would. Screenshots land in test-results/<test name>/.

Slow steps (the first spawn of a JupyterLab server) get explicit timeouts; every step that can time out
fails with the tail of the hub and portal logs in its message.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.browser.test_signup_browser import fill_signup, new_invite, submit_signup
from tests.live import Stack

# The first spawn starts a jupyterhub-singleuser process and builds JupyterLab's page: give it time.
LAB_TIMEOUT = 90_000
NAVIGATION_TIMEOUT = 30_000
# What the embedded spawner links into every home (hubconfig/spawners.py), and the product promises.
HOME_FOLDERS = ("data", "team-shared")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("stack"), proxy="python")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@contextmanager
def step(stack: Stack, what: str):
    """Re-raise a timeout or a failed expectation with what we were doing and the stack's log tail."""
    try:
        yield
    except (PlaywrightError, AssertionError) as exc:  # Playwright's TimeoutError is a PlaywrightError
        raise AssertionError(f"{what}: {exc}\n\n{stack.log_tail()}") from exc


def lab_url_pattern(stack: Stack, username: str) -> re.Pattern:
    return re.compile(re.escape(stack.url(f"/jupyter/user/{username}/lab")) + r"(/[^?#]*)?([?#].*)?$")


def record_documents(page: Page) -> list[tuple[str, int]]:
    """Every main-frame document response (URL, status) from now on, redirects included, in order."""
    documents: list[tuple[str, int]] = []

    def on_response(response):
        request = response.request
        if request.resource_type == "document" and request.frame == page.main_frame:
            documents.append((response.url, response.status))

    page.on("response", on_response)
    return documents


def sign_up_from_home(stack: Stack, page: Page, username: str) -> None:
    """Home page → the big 注册 button → fill the form → back on the home page, logged in."""
    code = new_invite(stack)
    with step(stack, "opening the portal's home page"):
        page.goto(stack.url("/"), timeout=NAVIGATION_TIMEOUT)
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    with step(stack, "signing up"):
        page.locator("main").get_by_role("link", name="注册", exact=True).click()
        expect(page).to_have_url(stack.url("/accounts/signup/"))
        fill_signup(page, username, code)
        response = submit_signup(page)
        assert response.status == 302, f"sign-up POST answered {response.status}, expected a redirect"
        expect(page).to_have_url(stack.url("/"))
        expect(page.locator("header .who")).to_have_text(username)


def open_jupyterlab_from_home(stack: Stack, page: Page, username: str) -> list[tuple[str, int]]:
    """Click 打开 JupyterLab on the home page and wait until JupyterLab has really loaded.

    Returns the document responses on the way (the OAuth round trip, the spawn, the lab page).
    """
    documents = record_documents(page)
    started = time.monotonic()
    with step(stack, "clicking 打开 JupyterLab on the home page"):
        page.locator("main").get_by_role("link", name="打开 JupyterLab", exact=True).click()
    with step(stack, f"waiting for /jupyter/user/{username}/lab (documents so far: {documents})"):
        page.wait_for_url(lab_url_pattern(stack, username), timeout=LAB_TIMEOUT)
    at_url = time.monotonic() - started
    with step(stack, "waiting for JupyterLab to render (main dock panel, launcher, file browser)"):
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)
        expect(page.locator(".jp-Launcher").first).to_be_visible(timeout=LAB_TIMEOUT)
        expect(page.locator("#filebrowser")).to_be_visible(timeout=LAB_TIMEOUT)
    # Shown with `pytest -s` (and in the report of a failing test): how long a student waits.
    print(
        f"\n{username}: at the lab URL after {at_url:.1f}s, JupyterLab rendered after {time.monotonic() - started:.1f}s"
    )
    return documents


def file_browser_entry(page: Page, name: str):
    """The file browser row whose name is exactly `name`."""
    return page.locator("#filebrowser .jp-DirListing-item").filter(
        has=page.locator(".jp-DirListing-itemText", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
    )


def test_student_signs_up_and_lands_in_jupyterlab_without_a_second_login(
    stack, new_context, screenshot, doc_screenshot
):
    username = "lab-student"
    page = new_context(locale="zh-CN").new_page()  # 1280x800, as every desktop page in conftest
    assert page.viewport_size == {"width": 1280, "height": 800}

    sign_up_from_home(stack, page, username)
    screenshot(page, "01-home-logged-in")
    doc_screenshot(page, "student-home")
    documents = open_jupyterlab_from_home(stack, page, username)

    # The portal session carried the login: no login page was shown anywhere on the way, and the hub's
    # login and the portal's login page (which answers the authorization at once for a logged-in browser)
    # were pure redirects.
    chain = "\n".join(f"  {status} {url}" for url, status in documents)
    paths = [(urlsplit(url).path, status) for url, status in documents]
    logins = [(p, s) for p, s in paths if p.startswith("/accounts/login")]
    assert all(300 <= s < 400 for _, s in logins), f"the portal asked to log in again:\n{chain}"
    shown = [(p, s) for p, s in paths if p in {"/jupyter/hub/login", "/o/authorize/"} and not 300 <= s < 400]
    assert not shown, f"a login or consent page was shown instead of a redirect: {shown}\n{chain}"
    expect(page.locator("input[type=password]")).to_have_count(0)

    with step(stack, "looking for data/ and team-shared/ in the file browser"):
        for name in HOME_FOLDERS:
            entry = file_browser_entry(page, name)
            expect(entry).to_have_count(1, timeout=NAVIGATION_TIMEOUT)
            expect(entry).to_be_visible()
            # Both are folders (links to var/shared/...), and JupyterLab shows them as such.
            expect(entry).to_have_attribute("data-isdir", "true")
    with step(stack, "checking that JupyterLab speaks Chinese (menu bar: 文件 = File)"):
        expect(page.locator("#jp-menu-panel").get_by_text("文件", exact=True)).to_be_visible(timeout=NAVIGATION_TIMEOUT)
    screenshot(page, "02-jupyterlab-loaded")


def test_logging_out_of_jupyterlab_also_logs_out_of_the_portal(stack, new_context, screenshot):
    username = "lab-leaver"
    page = new_context(locale="zh-CN").new_page()
    sign_up_from_home(stack, page, username)
    open_jupyterlab_from_home(stack, page, username)

    # JupyterLab's own File → Log Out (the hub extension's `hub:logout` command): it navigates to
    # /jupyter/hub/logout from the page, so the hub's redirect to the portal's logout is same-origin.
    with step(stack, "File → Log Out in JupyterLab"):
        page.locator("#jp-menu-panel .lm-MenuBar-item").first.click()  # the first menu is File (文件)
        logout_item = page.locator('.lm-Menu .lm-Menu-item[data-command="hub:logout"]')
        expect(logout_item).to_be_visible()
        screenshot(page, "01-file-menu-log-out")
        with page.expect_response(lambda r: urlsplit(r.url).path == "/jupyter/hub/logout", timeout=NAVIGATION_TIMEOUT):
            logout_item.click()
        # Hub logout → portal /accounts/logout/ → the portal's home page, logged out.
        page.wait_for_url(stack.url("/"), timeout=NAVIGATION_TIMEOUT)

    with step(stack, "checking the portal's header after logging out of JupyterLab"):
        page.goto(stack.url("/"), timeout=NAVIGATION_TIMEOUT)
        header = page.locator("header")
        expect(header.get_by_role("link", name="登录", exact=True)).to_be_visible()
        expect(header.get_by_role("link", name="注册", exact=True)).to_be_visible()
        expect(header.locator(".who")).to_have_count(0)
        expect(header.get_by_text(username)).to_have_count(0)
        expect(header.get_by_role("button", name="退出登录")).to_have_count(0)
        screenshot(page, "02-home-logged-out")

    with step(stack, "opening /jupyter/ after logging out"):
        page.goto(stack.url("/jupyter/"), timeout=NAVIGATION_TIMEOUT)
        expect(page).to_have_url(re.compile("^" + re.escape(stack.url("/accounts/login/"))), timeout=NAVIGATION_TIMEOUT)
        expect(page.locator("input[type=password]")).to_have_count(1)
        expect(page.locator("header .who")).to_have_count(0)
    screenshot(page, "03-jupyter-asks-for-portal-login")


def test_student_with_a_printed_set_password_link_lands_in_jupyterlab(stack, new_context, screenshot, tmp_path):
    """Issue 12: an imported student's one-time link (from `import_roster --links`) → own password → JupyterLab."""
    roster = tmp_path / "roster.csv"
    roster.write_bytes("用户名,姓名,班级\r\nlink-student,林同学,经济学1班\r\n".encode("gb18030"))
    links = tmp_path / "links.csv"
    stack.manage("import_roster", str(roster), "--links", str(links))
    link = links.read_text(encoding="utf-8-sig").splitlines()[1].split(",")[2]
    assert link.startswith(stack.url("/accounts/set-password/")), link

    page = new_context(locale="zh-CN").new_page()
    with step(stack, "opening the printed link and choosing a password"):
        page.goto(link, timeout=NAVIGATION_TIMEOUT)
        expect(page.get_by_role("heading", level=1)).to_have_text("设置你的密码")
        page.get_by_label("新密码", exact=True).fill("Panel-survey-2026")
        page.get_by_label("新密码确认", exact=True).fill("Panel-survey-2026")
        page.get_by_role("button", name="设置密码并登录").click()
        expect(page).to_have_url(stack.url("/"))
        expect(page.locator("header .who")).to_have_text("link-student")
    screenshot(page, "01-home-after-set-password")
    open_jupyterlab_from_home(stack, page, "link-student")
    screenshot(page, "02-jupyterlab-loaded")
