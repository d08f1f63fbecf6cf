"""A new student, in a real browser, as the issue's "done when" says: sign up on the portal, open
JupyterLab (now in a container) and find the example notebooks, data/ and team-shared/, in Chinese.
Screenshots land in test-results/<test name>/."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_jupyterlab_browser import (
    NAVIGATION_TIMEOUT,
    file_browser_entry,
    open_jupyterlab_from_home,
    sign_up_from_home,
    step,
)
from tests.docker.conftest import EXAMPLE, RUN
from tests.docker.inside import container_of


def test_new_student_finds_notebooks_data_and_team_shared_in_a_chinese_jupyterlab_in_a_container(
    docker_stack, docker_client, new_context, screenshot, doc_screenshot
):
    username = f"ds{RUN}-web"
    page = new_context(locale="zh-CN").new_page()
    sign_up_from_home(docker_stack, page, username)
    open_jupyterlab_from_home(docker_stack, page, username)
    assert container_of(docker_client, username).status == "running"

    with step(docker_stack, "looking for notebooks/, data/ and team-shared/ in the file browser"):
        for name in ("notebooks", "data", "team-shared"):
            entry = file_browser_entry(page, name)
            expect(entry).to_have_count(1, timeout=NAVIGATION_TIMEOUT)
            expect(entry).to_have_attribute("data-isdir", "true")
    with step(docker_stack, "checking that JupyterLab speaks Chinese (menu bar: 文件 = File)"):
        expect(page.locator("#jp-menu-panel").get_by_text("文件", exact=True)).to_be_visible(timeout=NAVIGATION_TIMEOUT)
    screenshot(page, "01-jupyterlab-home")
    doc_screenshot(page, "student-jupyterlab")
    with step(docker_stack, "opening notebooks/ to find the examples"):
        file_browser_entry(page, "notebooks").dblclick()
        expect(file_browser_entry(page, EXAMPLE)).to_have_count(1, timeout=NAVIGATION_TIMEOUT)
    screenshot(page, "02-jupyterlab-notebooks")
