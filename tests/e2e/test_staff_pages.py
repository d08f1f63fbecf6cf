"""Staff pages and the hub's own pages against the real stack: the hub's home in Chinese with the way back to
the portal and the portal's announcement; the usage page in Chromium showing a running server and stopping it."""

from __future__ import annotations

import time

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
    finally:
        client.close()


def test_usage_page_in_a_browser_shows_the_running_server_and_stops_it(stack, client, student, page, screenshot):
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
    screenshot(page, "01-usage-running")

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
