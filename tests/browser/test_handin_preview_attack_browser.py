"""A student's hand-in attacks the teacher who opens it: a notebook with `<script>`, `onerror=` and `onload=`
payloads in Markdown, in an HTML output and in a JavaScript output, each trying to change the page, read the
portal's cookies and call the portal as the teacher. The teacher opens its preview from the assignment's
table in Chromium: nothing runs, nothing reaches the portal, and the page has an origin of its own (no
cookies at all).

The same payload, put into a page as it is, does run in this browser (the control at the start), so the test
would see an attack that got through."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.test_staff_tools_browser import PASSWORD, log_in


def payload(base: str) -> dict[str, str]:
    """Each piece of the attack, as HTML; each one says what it did in the title and calls the portal."""

    def attack(tag: str) -> str:
        return (
            f"document.title='pwned-{tag}';window.pwned='{tag}';"
            f"fetch('{base}/pwned-fetch-{tag}?c='+encodeURIComponent(document.cookie),{{credentials:'include'}});"
            f"new Image().src='{base}/pwned-img-{tag}'"
        )

    return {
        "markdown": f'<script>{attack("md-script")}</script>\n\n<img src="x" onerror="{attack("md-onerror")}">',
        "html": f'<b>结果</b><script>{attack("html-script")}</script><img src="x" onerror="{attack("html-onerror")}">'
        f'<svg onload="{attack("html-svg")}"></svg>',
        "javascript": attack("js-output"),
    }


def notebook(base: str) -> str:
    parts = payload(base)
    return json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# 第一题\n\n" + parts["markdown"]},
                {
                    "cell_type": "code",
                    "id": "c1",
                    "execution_count": 1,
                    "metadata": {},
                    "source": "show()",
                    "outputs": [
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"text/html": parts["html"], "text/plain": "x"},
                        },
                        {
                            "output_type": "display_data",
                            "metadata": {},
                            "data": {"application/javascript": parts["javascript"]},
                        },
                    ],
                },  # fmt: skip
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        ensure_ascii=False,
    )


SETUP = """
import json
from django.contrib.auth.models import Group
from django.utils import timezone
from django.conf import settings
from accounts.models import User
from course.models import Assignment, Submission
User.objects.create_superuser("laoshi", password={password!r})
group = Group.objects.create(name="class-x")
mallory = User.objects.create_user("mallory", password={password!r}, first_name="马洛")
mallory.groups.add(group)
now = timezone.now()
hw = Assignment.objects.create(title="作业一", release_at=now - timezone.timedelta(days=1),
                               due_at=now + timezone.timedelta(days=1))
hw.groups.add(group)
sub = Submission.objects.create(assignment=hw, student=mallory, status="done", requested_at=now, file_count=1)
sub.folder = f"{{hw.pk}}/{{mallory.pk}}-{{sub.pk}}"
sub.path.mkdir(parents=True)
data = {notebook!r}
(sub.path / "hw1.ipynb").write_text(data)
sub.files = [{{"path": "hw1.ipynb", "size": len(data.encode()), "sha256": ""}}]
sub.size = len(data.encode())
sub.save()
print(hw.pk)
"""


@pytest.fixture(scope="module")
def handed_in(live_portal):
    script = SETUP.format(password=PASSWORD, notebook=notebook(live_portal.url("").rstrip("/")))
    return int(live_portal.manage("shell", "-c", script).stdout.split()[-1])


def test_the_payload_runs_when_served_as_it_is_on_the_portals_origin(live_portal, new_context):
    page = new_context().new_page()
    calls = []
    page.on("request", lambda request: calls.append(request.url))
    parts = payload(live_portal.url("").rstrip("/"))
    html = f"<!doctype html><title>clean</title>{parts['markdown']}{parts['html']}"
    # The notebook's HTML as an unguarded page of the portal would serve it: no sandbox, no policy.
    page.route(live_portal.url("/control/"), lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(live_portal.url("/control/"))
    expect(page).to_have_title(re.compile("^pwned-"), timeout=5000)
    assert page.evaluate("() => window.pwned") is not None
    page.wait_for_timeout(500)
    assert any("/pwned-fetch-" in url for url in calls), calls


def test_a_hand_in_notebook_runs_nothing_in_the_teachers_browser_and_cannot_reach_the_portal(
    live_portal, handed_in, page, screenshot
):
    calls = []
    page.context.on("request", lambda request: calls.append(request.url))
    log_start = live_portal.log_path.stat().st_size
    log_in(page, live_portal, "laoshi", PASSWORD)
    page.goto(live_portal.url(f"/admin/course/assignment/{handed_in}/students/"))
    expect(page.locator("#handins-table")).to_contain_text("mallory")
    with page.expect_popup(timeout=60_000) as opened:  # the first preview of a process imports nbconvert
        page.get_by_role("link", name="hw1.ipynb").click()
    preview = opened.value
    preview.wait_for_load_state()
    expect(preview.locator(".cfps-banner")).to_contain_text("mallory")
    expect(preview.locator("h1")).to_contain_text("第一题")
    expect(preview.locator("b", has_text="结果")).to_be_visible()
    time.sleep(1.5)  # what would run (onerror, onload, fetch) has had its time
    screenshot(preview, "preview")
    assert preview.title() == "hw1.ipynb", preview.title()
    assert preview.evaluate("() => window.pwned === undefined")
    # The page is sandboxed into an origin of its own: no cookies to read, none sent, whatever ran.
    assert preview.evaluate("() => window.origin") == "null"
    blocked = preview.evaluate("() => { try { return 'read: ' + document.cookie } catch (e) { return e.name } }")
    assert blocked == "SecurityError", blocked
    assert not [url for url in calls if "pwned" in url], [url for url in calls if "pwned" in url]
    with open(live_portal.log_path, "rb") as log:  # the portal's access log since the login: no call arrived
        log.seek(log_start)
        assert b"pwned" not in log.read()
    # The teacher's own session is untouched: the table still loads, logged in.
    page.reload()
    expect(page.locator("#handins-table")).to_contain_text("mallory")
