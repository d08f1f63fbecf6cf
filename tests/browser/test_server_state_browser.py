"""The server that starts at a student's portal login (issue 23), through the whole stack in a real browser.

- Signing up (a login) starts the student's server in the background; the home page's state line goes from
  starting to 你的服务器已就绪 without a reload (static/js/server-state.js polling /api/server/).
- A hub that hangs (stopped with SIGSTOP: it takes connections and answers nothing) does not hold up the portal's
  login; the start goes through once the hub answers again.
- A student deactivated before the queued start is carried out never gets a server, whether the deactivation
  went through `save()` (the start is dropped with the removal) or round it (the start looks at the account).
One stack for the module, with START_SERVER_AT_LOGIN on (the shipped default; tests/live.py's stacks turn it off).
"""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.test_jupyterlab_browser import NAVIGATION_TIMEOUT, sign_up_from_home, step
from tests.e2e import flows
from tests.e2e.test_lifecycle import shell
from tests.live import Stack, free_port

READY_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(
        tmp_path_factory.mktemp("stack"),
        proxy="python",
        extra_env={"INVITE_CODES": flows.INVITE_CODE, "START_SERVER_AT_LOGIN": "true"},
    ) as s:
        yield s


def server(stack, username: str) -> dict | None:
    """The hub's model of the user's server (as the portal's service asks), or None."""
    response = flows.hub_api(stack, f"/users/{username}/server")
    return response.json() if response.status_code == 200 else None


def test_the_home_page_shows_the_server_starting_and_then_ready_without_a_reload(stack, new_context, screenshot):
    username = "warm-student"
    page = new_context(locale="zh-CN").new_page()
    documents = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and documents.append(frame.url))
    sign_up_from_home(stack, page, username)  # the sign-up logs in, which starts the server
    loaded = list(documents)
    state = page.locator("#server-state")
    with step(stack, "waiting for the state line to show the server starting or ready"):
        # (a local server may be up between two polls, 2 s apart: then the line goes from none to ready at once)
        expect(state).to_have_attribute("data-state", re.compile("^(starting|ready)$"), timeout=NAVIGATION_TIMEOUT)
        screenshot(page, "01-starting")
        expect(state).to_contain_text(re.compile("正在启动|已就绪"))
    with step(stack, "waiting for 你的服务器已就绪 without a reload"):
        expect(state).to_have_attribute("data-state", "ready", timeout=READY_TIMEOUT)
        expect(state).to_have_text("你的服务器已就绪。")
    screenshot(page, "02-ready")
    assert documents == loaded, f"the page was reloaded or left: {documents[len(loaded) :]}"
    assert (server(stack, username) or {}).get("ready"), flows.explain(stack, "the hub has no ready server")


def test_the_portal_login_does_not_wait_for_a_hung_hub_and_the_start_comes_once_it_answers(stack):
    username = flows.unique_username("hung")
    flows.create_user(stack, username)
    flows.wait_until(lambda: flows.hub_api(stack, f"/users/{username}").status_code == 200, timeout=10)
    hub_pid = stack.hub_proc.pid
    os.kill(hub_pid, signal.SIGSTOP)
    try:
        with flows.new_client(stack) as client:
            started = time.monotonic()
            page = flows.portal_login(stack, client, username)
            took = time.monotonic() - started
            assert flows.logged_in_as(page.text) == username, flows.explain(stack, "the login failed")
            # The login's own work (a fast hash in dev is not used here: the real one, ~0.5 s) and no hub wait.
            assert took < 2, f"the portal's login took {took:.1f} s with the hub hung"
            assert client.get("/").status_code == 200
    finally:
        os.kill(hub_pid, signal.SIGCONT)  # before the queue's 3 s wait for the hub's answer ends
    ready = flows.wait_until(lambda: (server(stack, username) or {}).get("ready"), timeout=60)
    assert ready, flows.explain(stack, f"{username}'s server did not start after the hub came back")


@pytest.mark.parametrize("bypass_save", [False, True], ids=["save", "queryset-update"])
def test_a_student_deactivated_before_the_queued_start_never_gets_a_server(stack, bypass_save):
    username = flows.unique_username("gone")
    flows.create_user(stack, username)
    flows.wait_until(lambda: flows.hub_api(stack, f"/users/{username}").status_code == 200, timeout=10)
    # The login's start, queued while this portal process cannot reach the hub.
    shell(stack, f"from accounts import hub\nhub.queue_start({username!r})\n", HUB_PORT=str(free_port()))
    assert f"would start the server of {username} (login" in stack.manage("retry_hub_removals", "--dry-run").stdout
    deactivate = (
        f"User.objects.filter(username={username!r}).update(is_active=False)\n"
        if bypass_save
        else f"u = User.objects.get(username={username!r})\nu.is_active = False\nu.save()\n"
    )
    shell(stack, "from accounts.models import User\n" + deactivate, HUB_PORT=str(free_port()))

    stack.manage("retry_hub_removals")  # the hub answers: the queue is carried out
    assert server(stack, username) is None or not server(stack, username).get("ready")
    time.sleep(2)  # a start the hub had taken would be running or pending by now
    if not bypass_save:  # the deactivation's own removal went through too
        assert flows.hub_api(stack, f"/users/{username}").status_code == 404, "the hub user is still there"
    found = server(stack, username)
    assert found is None or not (found.get("ready") or found.get("pending")), f"a server was started: {found}"
    assert username not in stack.manage("retry_hub_removals", "--dry-run").stdout


def test_the_state_view_answers_only_about_ones_own_server_and_only_when_logged_in(stack):
    username = flows.unique_username("own")
    flows.create_user(stack, username)
    anonymous = httpx.get(stack.url("/api/server/"), trust_env=False, follow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["location"]
    with flows.new_client(stack) as client:
        flows.portal_login(stack, client, username)
        # A name in the query changes nothing: the view always asks about the logged-in user.
        # The login started this student's server: starting or ready, never another student's "ready" alone.
        answer = client.get("/api/server/", params={"user": "warm-student"}).json()
        assert answer["state"] in {"starting", "ready"}, answer
        assert answer["label"], answer  # in the browser's language (the Chinese one: the first test)
