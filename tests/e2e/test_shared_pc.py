"""A 这是公共电脑 (shared computer) login through the real hub (rules in accounts/sessions.py): the portal's session
cookie has no expiry, and once the login has idled out the hub's next auth refresh sends its session back to the
portal's login form, though no request reached the portal meanwhile (the browser was closed, the hub's own cookie
kept). Idle time is made by moving the login's last-request time back, not by waiting.
"""

from __future__ import annotations

from tests.e2e import flows
from tests.e2e.conftest import AUTH_REFRESH_SECONDS
from tests.e2e.flows import explain, path_of

AGE = """
from datetime import timedelta
from django.conf import settings
from django.utils import timezone
from accounts.models import SharedPcLogin
from accounts.sessions import TOUCH_SECONDS
ago = timezone.now() - timedelta(seconds=settings.SHARED_PC_IDLE_SECONDS + TOUCH_SECONDS + 1)
print(SharedPcLogin.objects.filter(user__username={username!r}).update(last_seen=ago))
"""


def test_a_shared_pc_login_left_idle_loses_its_hub_session_at_the_hubs_next_refresh(stack):
    username = flows.unique_username("lab")
    flows.create_user(stack, username)
    with flows.new_client(stack) as client:
        page = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
        assert path_of(page.url) == "/accounts/login/", explain(stack, f"expected the portal login: {page.url}")
        home = flows.post_form(
            stack, client, page, {"username": username, "password": flows.PASSWORD, "shared_pc": "on"}
        )
        assert path_of(home.url) == "/jupyter/hub/home" and home.status_code == 200, explain(
            stack, f"the shared-PC login did not reach the hub: {flows.urls_of(home)}"
        )
        portal_cookie = next(c for c in client.cookies.jar if c.name == "cfps_session")
        assert portal_cookie.expires is None, explain(stack, f"the portal cookie expires at {portal_cookie.expires}")
        # The hub's login cookie ends with the browser too (hubconfig/config.py cookie_options).
        hub_cookies = [c for c in client.cookies.jar if c.name.endswith("jupyterhub-hub-login")]
        assert hub_cookies and all(c.expires is None for c in hub_cookies), explain(
            stack, f"the hub's login cookie outlives the browser: {[(c.name, c.expires) for c in hub_cookies]}"
        )
        assert flows.oauth_grants(stack, username)["access_tokens"] >= 1

        # The browser closes (its portal cookie goes, the hub's stays) and nobody asks the portal for a while.
        client.cookies.jar.clear(portal_cookie.domain, portal_cookie.path, portal_cookie.name)
        assert stack.manage("shell", "-c", AGE.format(username=username)).stdout.split()[-1] == "1"

        def back_at_the_login_form():
            again = client.get("/jupyter/hub/home")
            return again if path_of(again.url) == "/accounts/login/" else None

        page = flows.wait_until(back_at_the_login_form, timeout=AUTH_REFRESH_SECONDS + 10)
        assert page is not None, explain(
            stack, f"the hub still opens for the next person: {flows.urls_of(client.get('/jupyter/hub/home'))}"
        )
        assert flows.oauth_grants(stack, username) == {
            "access_tokens": 0,
            "live_refresh_tokens": 0,
            "grants": 0,
            "id_tokens": 0,
        }
