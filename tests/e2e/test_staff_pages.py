"""Staff pages and the hub's own pages against the real stack: the hub's home in Chinese with the way back to
the portal and the portal's announcement; the usage page in Chromium showing a running server, its memory, and
stopping it; the hub's memory figures for the portal's token only; the token page, the spawn progress and the
home page's stop button in Chinese in Chromium."""

from __future__ import annotations

import re
import time

import httpx

from tests.e2e import flows


def _announce(stack, message: str) -> None:
    stack.manage(
        "shell", "-c", f"from staff.models import Announcement; Announcement.objects.create(message={message!r})"
    )


def test_hub_home_is_chinese_links_back_to_the_portal_and_shows_the_announcement(stack):
    client = flows.new_client(stack, **{"Accept-Language": "zh-CN,zh;q=0.9"})
    student = flows.unique_username("zh")
    flows.signup(stack, client, student)
    _announce(stack, "本周五 20:00 系统维护")
    deadline = time.monotonic() + 25  # the hub refreshes announcements every 15 s
    while True:
        page = flows.hub_login(stack, client, student)
        html = page.text
        if "本周五 20:00 系统维护" in html or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert "我的 JupyterLab" in html and "启动我的服务器" in html, html[:3000]
    assert '<html lang="zh-Hans">' in html
    assert "返回门户" in html
    assert f'href="{stack.url("/")}"' in html
    assert "本周五 20:00 系统维护" in html
    client.close()


def test_hub_pages_are_english_for_an_english_browser(stack):
    client = flows.new_client(stack, **{"Accept-Language": "en-US,en;q=0.9"})
    try:
        username = flows.unique_username("en")
        flows.signup(stack, client, username)
        html = flows.hub_login(stack, client, username).text
        assert "My JupyterLab" in html and "Back to the portal" in html
        assert '<html lang="en">' in html
        token_page = client.get("/jupyter/hub/token").text
        assert '<html lang="en">' in token_page and "Request a new API token" in token_page
    finally:
        client.close()


def test_usage_page_in_a_browser_shows_the_running_server_and_stops_it(
    stack, client, student, page, screenshot, doc_screenshot
):
    teacher = flows.unique_username("teacher")
    flows.create_user(stack, teacher, staff=True, superuser=True)
    flows.hub_login(stack, client, student)
    flows.wait_for_lab(stack, client, student, client.get(f"/jupyter/hub/spawn/{student}"))

    page.goto(stack.url("/admin/login/?next=/admin/usage/"))
    page.fill("#id_username", teacher)
    page.fill("#id_password", flows.PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/admin/usage/**")
    row = page.locator(f'tr[data-username="{student}"]')
    assert "运行中" in row.inner_text(), page.content()[:3000]
    assert "从未" not in row.inner_text()  # the student logged in
    # The local server's resident memory, from the hub (the JupyterLab process alone is well over 10 MB).
    assert re.search(r"\d{2,}(\.\d+)?\s*MB|\d(\.\d+)?\s*GB", row.locator("td.memory").inner_text()), row.inner_text()
    screenshot(page, "01-usage-running")
    doc_screenshot(page, "teacher-usage")

    started = time.monotonic()
    page.goto(stack.url("/admin/usage/"))
    assert time.monotonic() - started < 2.0
    page.locator(f'tr[data-username="{student}"] button[type=submit]').click()
    page.wait_for_load_state()
    assert student in page.locator(".messagelist").inner_text()
    deadline = time.monotonic() + 30
    while "运行中" in page.locator(f'tr[data-username="{student}"]').inner_text():
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(1)
        page.reload()
    screenshot(page, "02-usage-stopped")


def test_hub_login_while_the_portal_is_down_shows_a_portal_unavailable_page(tmp_path):
    """The hub's token call to the portal fails (connection refused): a translated 503, not a 500."""
    from tests.e2e.conftest import STACK_ENV
    from tests.live import Stack

    with Stack(tmp_path, extra_env=STACK_ENV) as own:
        client = flows.new_client(own, **{"Accept-Language": "zh-CN,zh;q=0.9"})
        try:
            flows.signup(own, client, flows.unique_username("down"))
            url = own.url("/jupyter/hub/login?next=/jupyter/hub/home")
            for _ in range(10):  # follow redirects by hand up to the hub's OAuth callback
                response = client.get(url, follow_redirects=False)
                url = str(response.url.join(response.headers.get("location", "")))
                if flows.path_of(url) == "/jupyter/hub/oauth_callback":
                    break
            assert flows.path_of(url) == "/jupyter/hub/oauth_callback", url
            own.portal.stop()  # the portal goes away between the authorization and the hub's token call
            page = client.get(url, follow_redirects=False)
            assert page.status_code == 503, page.text[:2000]
            assert "门户暂时无法访问" in page.text and "重试" in page.text
        finally:
            client.close()


def _log_in_to_the_hub(stack, page, student: str) -> None:
    page.goto(stack.url("/jupyter/hub/home"))
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", student)
    page.fill("#id_password", flows.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/jupyter/hub/home")


def test_hub_home_in_a_chinese_browser(stack, client, student, page, screenshot, doc_screenshot):
    _log_in_to_the_hub(stack, page, student)
    assert page.locator("#start").inner_text().strip() == "启动我的服务器"
    assert page.get_by_test_id("back-to-portal").get_attribute("href") == stack.url("/")
    screenshot(page, "hub-home")
    doc_screenshot(page, "student-hub-home")


def test_an_account_waiting_for_approval_gets_no_way_into_the_hub(stack):
    code = f"WAIT-{flows.unique_username('c').upper()}"
    stack.manage(
        "shell",
        "-c",
        f"from accounts.models import InviteCode; InviteCode.objects.create(code={code!r}, needs_approval=True)",
    )
    username = flows.unique_username("wait")
    client = flows.new_client(stack, **{"Accept-Language": "zh-CN,zh;q=0.9"})
    try:
        form = client.get("/accounts/signup/")
        page = flows.post_form(
            stack,
            client,
            form,
            {"username": username, "password1": flows.PASSWORD, "password2": flows.PASSWORD, "invite_code": code},
        )
        assert flows.path_of(page.url) == "/accounts/waiting/" and "等待审核" in page.text
        # The hub sends the browser to the portal, whose login answers "waiting" and never hands out a code.
        login = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
        assert flows.path_of(login.url) == "/accounts/login/"
        answer = flows.portal_login(stack, client, username, page=login)
        assert "等待审核" in answer.text and "/jupyter/hub/home" not in str(answer.url)
        assert flows.hub_api(stack, f"/users/{username}").status_code == 404  # the hub never saw this user
    finally:
        client.close()


def test_usage_page_with_200_students_and_a_live_hub_loads_in_under_two_seconds(stack):
    script = (
        "from accounts.models import User\n"
        "if not User.objects.filter(username__startswith='bulk-').exists():\n"
        "    User.objects.bulk_create([User(username=f'bulk-{i:03d}') for i in range(200)])\n"
    )
    stack.manage("shell", "-c", script)
    teacher = flows.unique_username("t200")
    flows.create_user(stack, teacher, staff=True, superuser=True)
    client = flows.new_client(stack)
    try:
        flows.portal_login(stack, client, teacher)
        client.get("/admin/usage/")  # first load: templates, translations, the engine's (empty) answer
        timings = []
        for _ in range(3):
            started = time.monotonic()
            page = client.get("/admin/usage/")
            timings.append(time.monotonic() - started)
            assert page.status_code == 200 and 'data-testid="hub-problem"' not in page.text
        assert page.text.count('data-username="bulk-') == 200
        assert max(timings) < 2.0, timings
    finally:
        client.close()


def test_an_announcement_written_in_the_admin_shows_on_the_portal_and_in_the_hub(stack, page, screenshot):
    teacher = flows.unique_username("ann")
    flows.create_user(stack, teacher, staff=True, superuser=True)
    message = f"期中考试前系统维护 {teacher}"
    page.goto(stack.url("/admin/login/?next=/admin/staff/announcement/add/"))
    page.fill("#id_username", teacher)
    page.fill("#id_password", flows.PASSWORD)
    page.click("input[type=submit]")
    page.fill("#id_message", message)
    page.select_option("#id_level", "warning")
    screenshot(page, "01-admin-add-announcement")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/staff/announcement/")

    page.goto(stack.url("/"))
    assert message in page.locator(".announcements").inner_text()
    screenshot(page, "02-portal")

    page.goto(stack.url("/jupyter/hub/home"))
    page.wait_for_url("**/jupyter/hub/home")
    deadline = time.monotonic() + 25  # the hub refreshes announcements every 15 s
    while message not in page.content():
        assert time.monotonic() < deadline, "the announcement never reached the hub's page"
        time.sleep(2)
        page.reload()
    screenshot(page, "03-hub")


def test_the_hubs_memory_figures_are_for_the_portals_token_only(stack, client, student):
    from tests.e2e.test_lifecycle import mint_hub_token, with_token

    memory = "/jupyter/hub/api/cfps/memory"
    flows.hub_login(stack, client, student)
    student_token = mint_hub_token(stack, client, student)
    teacher = flows.unique_username("memadm")
    flows.create_user(stack, teacher, staff=True, superuser=True)
    teacher_client = flows.new_client(stack)
    try:
        flows.hub_login(stack, teacher_client, teacher)
        admin_token = mint_hub_token(stack, teacher_client, teacher)
    finally:
        teacher_client.close()
    # A staff member's token can do much (list every user), but not this: only the portal's role has the scope.
    assert with_token(stack, admin_token, path="/jupyter/hub/api/users").status_code == 200
    for who, token in [("a student", student_token), ("staff", admin_token)]:
        response = with_token(stack, token, path=memory)
        assert response.status_code == 403, f"{who}: {response.status_code} {response.text[:300]}"
        assert "memory" not in response.json()
    anonymous = httpx.get(stack.url(memory), trust_env=False, timeout=30)
    assert anonymous.status_code == 403
    # Through the hub's API port, as the portal asks: the same scope check.
    answer = flows.hub_api(stack, "/cfps/memory")
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"source", "memory", "problem"}


# Kept across the reload to JupyterLab (same origin): every message the spawn-pending page's log showed.
RECORD_PROGRESS = """
window.addEventListener("beforeunload", function () {
  var events = document.querySelectorAll("#progress-log .progress-log-event");  // (in a closed <details>)
  if (events.length) {
    sessionStorage.setItem("cfps-progress", Array.from(events, function (e) { return e.textContent; }).join("\\n"));
  }
});
"""


def test_token_page_spawn_progress_and_stop_button_in_a_chinese_browser(stack, student, page, screenshot):
    from hubconfig.templating import LIVE_MESSAGES

    _log_in_to_the_hub(stack, page, student)
    assert page.locator("html").get_attribute("lang") == "zh-Hans"

    page.goto(stack.url("/jupyter/hub/token"))
    assert page.locator("html").get_attribute("lang") == "zh-Hans"
    page.fill("#token-note", "我的脚本")
    page.click("#request-token-form button[type=submit]")
    page.locator("#token-result").wait_for()
    assert len(page.locator("#token-result").inner_text().strip()) >= 32  # the hub's token.js got its answer
    page.reload()
    row = page.locator("#api-tokens-table tr.token-row").first
    assert "我的脚本" in row.inner_text() and "撤销" in row.inner_text()
    assert re.search(r"20\d\d年", row.inner_text()), row.inner_text()  # the creation time, written the Chinese way
    assert "Request new API token" not in page.content()
    screenshot(page, "01-token")

    page.add_init_script(RECORD_PROGRESS)
    page.goto(stack.url(f"/jupyter/hub/spawn/{student}"))
    page.wait_for_url(f"**/jupyter/user/{student}/lab**", wait_until="commit", timeout=120_000)
    page.goto(stack.url("/jupyter/hub/home"))  # (the record is the hub origin's: the lab is on the student's)
    shown = page.evaluate("sessionStorage.getItem('cfps-progress')") or ""
    # The hub's own messages (progress 0, the default Spawner.progress, the ready event), in Chinese.
    assert "服务器已就绪" in shown, shown
    english = [*LIVE_MESSAGES["zh"]["exact"], *LIVE_MESSAGES["zh"]["prefixes"]]
    assert not [text for text in english if text in shown], shown

    assert page.locator("#start").inner_text().strip() == "打开我的服务器"
    page.click("#stop")
    # home.js writes "Start My Server" into the button once the server stopped.
    page.wait_for_function("document.getElementById('stop').style.display === 'none'", timeout=60_000)
    assert page.locator("#start").inner_text().strip() == "启动我的服务器"
    screenshot(page, "02-home-after-stop")
