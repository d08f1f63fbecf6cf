"""USER_SUBDOMAINS=true (issue 9's stronger mode): each student's server on a host of its own,
`<name>.<hub host>`, so students are isolated from each other in the browser as well. In the embedded set-up
the hub is `localhost`, so a student's server is `<name>.localhost`, which Chromium sends to loopback itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e import flows
from tests.live import Stack

LAB_TIMEOUT = 90_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("subdomain-stack"), proxy="python", extra_env={"USER_SUBDOMAINS": "true"}) as s:
        yield s


def test_each_students_jupyterlab_is_on_a_host_of_its_own(stack, new_context, screenshot):
    student = flows.unique_username("sub")
    flows.create_user(stack, student)
    page = new_context(locale="zh-CN").new_page()
    page.goto(stack.url("/accounts/login/"))
    page.locator("#id_username").fill(student)
    page.locator("#id_password").fill(flows.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.get_by_role("link", name="打开 JupyterLab").click()
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_TIMEOUT)
    screenshot(page, "lab-on-its-own-host")
    url = urlsplit(page.url)
    assert url.hostname == f"{student}.localhost", page.url
    assert url.path.startswith(f"/jupyter/user/{student}/lab"), page.url
    # The portal's cookies stay on the portal's host; the student's host sees only its own.
    assert "cfps_" not in page.evaluate("document.cookie")
    # The same student server is not served under the shared hub host.
    other = page.context.request.get(stack.hub_url(f"/jupyter/user/{student}/api/status"), max_redirects=0)
    assert other.status != 200 or "started" not in other.text(), other.status
