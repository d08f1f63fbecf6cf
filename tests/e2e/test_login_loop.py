"""The login loop between the portal (OAuth2/OIDC provider) and JupyterHub, against the real processes.

Each test runs once per proxy (python and node, see conftest.py) and makes its own users.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.e2e import flows
from tests.e2e.conftest import AUTH_REFRESH_SECONDS

explain = flows.explain
path_of = flows.path_of


def paths(urls: list[str]) -> list[str]:
    return [path_of(url) for url in urls]


# --- 1. one login, through the portal, straight into a running JupyterLab ------------------------------
def test_anonymous_visit_to_jupyter_logs_in_once_at_the_portal_and_lands_in_a_running_lab(stack, client):
    username = flows.unique_username("loop")
    with flows.new_client(stack) as other:  # the account exists, but this browser is not logged in anywhere
        flows.signup(stack, other, username)

    first = client.get("/jupyter/")
    visited = flows.urls_of(first)
    assert path_of(first.url) == "/accounts/login/" and first.status_code == 200, explain(
        stack, f"anonymous /jupyter/ should end on the portal login page, ended at {first.status_code} {visited}"
    )
    # The hub sends the browser to the portal's login page with its authorization request as `next` (the
    # portal answers it in the login's response), not through /o/authorize/ first.
    assert "/o/authorize/" not in paths(visited), explain(stack, f"a round trip through /o/authorize/: {visited}")
    authorize = [stack.url(flows.query_of(url)["next"]) for url in visited if path_of(url) == "/accounts/login/"]
    assert len(authorize) == 1, explain(stack, f"expected one authorization request, got {visited}")
    request = flows.query_of(authorize[0])
    assert authorize[0].startswith(stack.url("/o/authorize/")), explain(
        stack, f"the hub sent the browser to {authorize[0]}, not the public origin {stack.base_url}"
    )
    assert request.get("code_challenge_method") == "S256", explain(stack, f"no S256 PKCE in {authorize[0]}")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", request.get("code_challenge", "")), explain(
        stack, f"code_challenge is not a base64url SHA-256 in {authorize[0]}"
    )
    assert request.get("client_id") == flows.HUB_CLIENT_ID, explain(stack, authorize[0])
    assert request.get("redirect_uri") == flows.hub_callback_url(stack), explain(stack, authorize[0])
    assert flows.query_of(first.url).get("next", "").startswith("/o/authorize/?"), explain(
        stack, f"the login page does not lead back to the authorization request: {first.url}"
    )

    after_login = flows.portal_login(stack, client, username, page=first)
    visited = flows.wait_for_lab(stack, client, username, after_login)
    # visited[0] is the login form's own POST; nothing after it may be a login page again.
    assert path_of(visited[0]) == "/accounts/login/", explain(stack, str(visited))
    assert "/accounts/login/" not in paths(visited[1:]), explain(
        stack, f"the portal asked for the password a second time: {visited}"
    )
    callbacks = [url for url in visited if path_of(url) == "/jupyter/hub/oauth_callback"]
    assert callbacks and "code" in flows.query_of(callbacks[0]), explain(
        stack, f"the browser never brought a code back to the hub: {visited}"
    )
    assert flows.query_of(callbacks[0]).get("iss") == stack.url("/o"), explain(
        stack, f"the authorization response lacks the portal's issuer: {callbacks[0]}"
    )
    assert flows.query_of(callbacks[0]).get("state") == request["state"], explain(stack, callbacks[0])

    status = client.get(f"/jupyter/user/{username}/api/status", headers={"Accept": "application/json"})
    assert status.status_code == 200 and "started" in status.json(), explain(
        stack, f"/jupyter/user/{username}/api/status gave {status.status_code} {status.url}: {status.text[:500]}"
    )


# --- 2. portal teachers hold the hub's staff role (never JupyterHub's admin); TAs and students do not -------
@pytest.mark.parametrize(
    ("role", "staff"), [("teacher", True), ("ta", False), (None, False)], ids=["teacher", "ta", "student"]
)
def test_hub_staff_rights_follow_the_portal_teacher_role_and_nobody_is_jupyterhubs_admin(stack, client, role, staff):
    other = flows.unique_username("other")
    flows.create_user(stack, other)
    with flows.new_client(stack) as other_client:
        flows.hub_login(stack, other_client, other)  # a hub user with auth state (their portal tokens)
    username = flows.unique_username(role or "nostaff")
    flows.create_user(stack, username, role=role)
    flows.hub_login(stack, client, username)

    own = flows.hub_user_model(client)
    assert own.status_code == 200, explain(stack, f"/jupyter/hub/api/user gave {own.status_code}: {own.text[:500]}")
    assert own.json()["name"] == username, explain(stack, own.text[:500])
    assert own.json()["admin"] is False, explain(stack, f"role {role} made a JupyterHub admin: {own.text[:800]}")
    assert "admin" not in own.json()["roles"], explain(stack, f"roles: {own.json()['roles']}")
    assert ("cfps-staff" in own.json()["roles"]) is staff, explain(stack, f"roles: {own.json()['roles']}")

    # Staff see the users (the hub's admin page); nobody reads another user's auth state or acts as them.
    json = {"Accept": "application/json"}
    listing = client.get("/jupyter/hub/api/users", headers=json)
    assert listing.status_code == (200 if staff else 403), explain(stack, f"{listing.status_code} {listing.text[:300]}")
    model = client.get(f"/jupyter/hub/api/users/{other}", headers=json)
    assert model.status_code == (200 if staff else 404), explain(stack, f"{model.status_code} {model.text[:300]}")
    assert "auth_state" not in model.text, explain(stack, f"{username} read {other}'s auth state: {model.text[:500]}")
    xsrf = {"X-XSRFToken": flows.hub_xsrf_token(client), **json}
    minted = client.post(f"/jupyter/hub/api/users/{other}/tokens", json={"note": "as them"}, headers=xsrf)
    assert minted.status_code in (403, 404), explain(stack, f"a token for {other}: {minted.status_code} {minted.text}")
    made_admin = client.patch(f"/jupyter/hub/api/users/{username}", json={"admin": True}, headers=xsrf)
    assert made_admin.status_code in (403, 404), explain(stack, f"made admin: {made_admin.status_code}")
    assert flows.hub_user_model(client).json()["admin"] is False
    # (the XSRF token is right: the user's own token is minted with it)
    own_token = client.post(f"/jupyter/hub/api/users/{username}/tokens", json={}, headers=xsrf)
    assert own_token.status_code == 201, explain(
        stack, f"{own_token.status_code} {own_token.text} {list(client.cookies.jar)}"
    )

    # The portal's own service token (scopes servers + read:users:name) reads the admin flag too.
    as_portal = flows.hub_api(stack, f"/users/{username}")
    assert as_portal.status_code == 200 and as_portal.json().get("admin") is False, explain(
        stack, f"GET /users/{username} as the portal service: {as_portal.status_code} {as_portal.text[:500]}"
    )


# --- 2b. a staff-given temporary password opens nothing before the student replaces it ------------------
def test_a_temporary_password_must_be_changed_before_the_hub_logs_anyone_in(stack, client):
    username = flows.unique_username("temp")
    flows.create_user(stack, username)
    script = (
        "from accounts import setpassword\n"
        "from accounts.models import User\n"
        f"print(setpassword.set_temporary_password(User.objects.get(username={username!r})))\n"
    )
    temporary = stack.manage("shell", "-c", script).stdout.split()[-1]

    login_page = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
    landed = flows.portal_login(stack, client, username, temporary, page=login_page)
    visited = flows.urls_of(landed)
    assert path_of(landed.url) == "/accounts/password_change/", explain(
        stack, f"the temporary password did not lead to the password-change page: {visited}"
    )
    assert "/jupyter/hub/oauth_callback" not in paths(visited), explain(stack, f"the hub got a code: {visited}")
    assert flows.oauth_grants(stack, username)["grants"] == 0, explain(stack, "a code was issued")
    assert flows.hub_user_model(client).status_code == 403, explain(stack, "the hub logged the student in")
    # Asking the hub again, with the portal session the temporary password made, changes nothing.
    again = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
    assert path_of(again.url) == "/accounts/password_change/", explain(stack, str(flows.urls_of(again)))

    new_password = flows.PASSWORD + "-own"
    changed = flows.post_form(
        stack,
        client,
        again,
        {"old_password": temporary, "new_password1": new_password, "new_password2": new_password},
    )
    assert path_of(changed.url) == "/accounts/password_change/done/", explain(stack, str(flows.urls_of(changed)))
    home = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
    assert path_of(home.url) == "/jupyter/hub/home" and home.status_code == 200, explain(
        stack, f"after choosing a password the hub should log in without asking: {flows.urls_of(home)}"
    )


# --- 3. Django groups become hub groups, staff roles do not -------------------------------------------
def test_portal_groups_are_listed_on_the_hub_user(stack, client):
    username = flows.unique_username("grp")
    groups = ("class-2026a", f"team-{username[-6:]}")
    flows.create_user(stack, username, groups=groups, role="ta")  # 助教 is a role, never a hub group
    flows.hub_login(stack, client, username)

    # The user's own session: the portal's service token lacks the read:users:groups scope.
    own = flows.hub_user_model(client)
    assert own.status_code == 200, explain(stack, f"/jupyter/hub/api/user gave {own.status_code}: {own.text[:500]}")
    assert sorted(own.json()["groups"]) == sorted(groups), explain(
        stack, f"portal groups {groups}, hub groups {own.json()['groups']}"
    )
    assert own.json()["admin"] is False and "cfps-staff" not in own.json()["roles"], explain(
        stack, "a TA in classes must hold no staff rights on the hub"
    )


# --- 4. deactivation in the admin: server stopped, tokens gone, locked out ------------------------------
def _server_is_gone(stack, username):
    # Deactivation removes the hub user altogether, server and tokens with it (accounts/hub.py).
    return flows.hub_api(stack, f"/users/{username}").status_code == 404


def test_deactivating_a_user_in_the_admin_stops_the_server_revokes_tokens_and_locks_them_out(stack, client):
    username = flows.unique_username("leaver")
    flows.signup(stack, client, username)
    flows.wait_for_lab(stack, client, username, client.get("/jupyter/"))
    running = flows.hub_api(stack, f"/users/{username}")
    assert running.status_code == 200 and running.json()["servers"].get("", {}).get("ready"), explain(
        stack, f"the server should be running before the deactivation: {running.text[:500]}"
    )
    before = flows.oauth_grants(stack, username)
    assert before["access_tokens"] >= 1 and before["live_refresh_tokens"] >= 1, explain(
        stack, f"the hub should hold tokens for {username} after logging in: {before}"
    )
    assert path_of(client.get("/jupyter/hub/home").url) == "/jupyter/hub/home", explain(
        stack, "before the deactivation the hub home page must open with these cookies"
    )

    # A real staff member, in the real admin: the "Deactivate selected users" action on the user list.
    staff_name = flows.unique_username("teacher")
    flows.create_user(stack, staff_name, superuser=True)
    with flows.new_client(stack) as staff:
        flows.portal_login(stack, staff, staff_name)
        changelist = staff.get("/admin/accounts/user/", params={"q": username})
        assert changelist.status_code == 200, explain(stack, f"admin user list: {changelist.status_code}")
        selected = re.findall(r'name="_selected_action" value="(\d+)"', changelist.text)
        assert len(selected) == 1, explain(
            stack,
            f"searching the admin for {username} found {selected} at {changelist.url} "
            f"(history {[r.status_code for r in changelist.history]}): {changelist.text[:1500]}",
        )
        action = {"action": "deactivate_users", "_selected_action": selected, "index": "0", "select_across": "0"}
        confirm = flows.post_form(stack, staff, changelist, action)  # the action asks first
        assert 'name="apply"' in confirm.text, explain(stack, f"no confirmation page: {confirm.text[:1500]}")
        done = flows.post_form(stack, staff, confirm, {**action, "apply": "1"})
    deactivated_at = time.monotonic()
    assert "1 user deactivated." in done.text, explain(stack, f"the admin action did not confirm: {done.text[:2000]}")

    assert flows.wait_until(lambda: _server_is_gone(stack, username), timeout=15), explain(
        stack,
        f"{username}'s hub user (and server) still there 15 s after the deactivation: "
        f"{flows.hub_api(stack, f'/users/{username}').text}",
    )
    after = flows.oauth_grants(stack, username)
    assert after == {"access_tokens": 0, "live_refresh_tokens": 0, "grants": 0, "id_tokens": 0}, explain(
        stack, f"OAuth tokens of the deactivated {username} survive: {after}"
    )

    # Within the hub's auth refresh age, the old hub cookies stop opening the hub: the hub asks the portal,
    # the portal no longer knows the session, and the browser ends at the portal login.
    def locked_out():
        page = client.get("/jupyter/hub/home")
        return page if path_of(page.url) == "/accounts/login/" else None

    page = flows.wait_until(locked_out, timeout=AUTH_REFRESH_SECONDS + 10)
    assert page is not None, explain(
        stack,
        f"{time.monotonic() - deactivated_at:.0f} s after the deactivation the old cookies "
        f"still open {path_of(client.get('/jupyter/hub/home').url)}",
    )
    assert "/jupyter/hub/home" not in paths(flows.urls_of(page)[1:]), explain(stack, str(flows.urls_of(page)))
    assert flows.logged_in_as(client.get("/").text) is None, explain(
        stack, "the portal still shows the deactivated user as logged in"
    )

    refused = flows.portal_login(stack, client, username)
    assert path_of(refused.url) == "/accounts/login/" and flows.logged_in_as(refused.text) is None, explain(
        stack, f"the portal accepted the deactivated user's password: ended at {refused.url}"
    )
    assert 'class="errors form-errors"' in refused.text, explain(
        stack, f"the login form shows no error for the deactivated user:\n{refused.text[:2000]}"
    )


# --- 6. logout ------------------------------------------------------------------------------------------
def test_hub_logout_also_ends_the_portal_session(stack):
    username = flows.unique_username("bye")
    # Cross-site now (the hub has its own host): the hub's id_token, not Sec-Fetch-Site, is the proof.
    with flows.new_client(stack) as client:
        flows.signup(stack, client, username)
        flows.hub_login(stack, client, username)
        assert flows.logged_in_as(client.get("/").text) == username, explain(stack, "not logged in before logout")

        out = client.get("/jupyter/hub/logout")
        visited = flows.urls_of(out)
        assert "/o/logout/" in paths(visited), explain(stack, f"hub logout never reached the portal: {visited}")
        assert path_of(out.url) == "/" and out.status_code == 200, explain(stack, f"logout ended at {visited}")

        home = client.get("/")
        assert flows.logged_in_as(home.text) is None and username not in home.text, explain(
            stack, f"the portal header still shows {flows.logged_in_as(home.text)!r} after the hub logout"
        )
        again = client.get("/jupyter/")
        assert path_of(again.url) == "/accounts/login/", explain(
            stack, f"after logout /jupyter/ should ask for the portal login, went {flows.urls_of(again)}"
        )


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site", None], ids=["cross-site", "same-site", "no-header"])
def test_portal_logout_by_get_from_elsewhere_only_asks_for_confirmation(stack, client, student, fetch_site):
    headers = {"Sec-Fetch-Site": fetch_site} if fetch_site else {}
    page = client.get("/accounts/logout/", headers=headers)
    assert page.status_code == 200 and path_of(page.url) == "/accounts/logout/", explain(
        stack, f"GET /accounts/logout/ (Sec-Fetch-Site: {fetch_site}) gave {page.status_code} {flows.urls_of(page)}"
    )
    assert re.search(r'<form method="post" action="/accounts/logout/">', page.text), explain(
        stack, f"no confirmation form:\n{page.text[:2000]}"
    )
    assert flows.logged_in_as(client.get("/").text) == student, explain(
        stack, f"a GET with Sec-Fetch-Site: {fetch_site} logged {student} out"
    )


@pytest.mark.parametrize("fetch_site", ["same-origin", "none"], ids=["same-origin", "typed-url"])
def test_portal_logout_by_get_logs_out_when_no_other_site_started_it(stack, client, student, fetch_site):
    out = client.get("/accounts/logout/", headers={"Sec-Fetch-Site": fetch_site})
    assert path_of(out.url) == "/" and flows.logged_in_as(out.text) is None, explain(
        stack,
        f"GET /accounts/logout/ (Sec-Fetch-Site: {fetch_site}) ended at {flows.urls_of(out)} "
        f"showing {flows.logged_in_as(out.text)!r}",
    )
    assert flows.logged_in_as(client.get("/").text) is None, explain(stack, f"{student} is still logged in")


def test_the_hubs_database_runs_in_wal_mode(stack):
    import sqlite3

    with sqlite3.connect(f"file:{stack.hub_dir / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", explain(
            stack, "hubconfig/hubdb.py not applied"
        )


def test_the_hub_checks_the_portals_token_in_one_hash_round_and_refuses_a_near_copy(stack):
    """The portal's token (HUB_API_TOKEN) is hashed once, as the hub's own tokens are, not 16384 times at every
    API call (hubconfig/config.py, trust_user_provided_tokens); it still opens the API, a one-letter change does not."""
    import sqlite3

    sql = "SELECT t.hashed FROM api_tokens t JOIN services s ON t.service_id = s.id WHERE s.name = 'portal'"
    with sqlite3.connect(f"file:{stack.hub_dir / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
        hashes = [hashed for (hashed,) in db.execute(sql)]
    assert hashes and all(hashed.split(":")[1] == "1" for hashed in hashes), explain(stack, f"hash rounds: {hashes}")
    token = stack.hub_admin_token()
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    for candidate, status in ((token, 200), (near, 403)):
        response = httpx.get(f"{stack.hub_api_url}/users", headers={"Authorization": f"token {candidate}"},
                             trust_env=False, timeout=30)  # fmt: skip
        assert response.status_code == status, explain(stack, f"{response.status_code} {response.text[:200]}")


# --- the hub's /login ----------------------------------------------------------------------------------
def test_the_hubs_login_sends_the_browser_straight_to_the_portal(stack, client):
    first = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"}, follow_redirects=False)
    assert first.status_code == 302, explain(stack, f"{first.status_code} {first.text[:300]}")
    location = first.headers["location"]
    assert location.startswith(stack.url("/accounts/login/?next=")), explain(
        stack, f"/jupyter/hub/login should redirect to the portal at once, not to {location}"
    )
    assert flows.query_of(location)["next"].startswith("/o/authorize/?"), explain(stack, location)


def test_the_hubs_login_keeps_next_on_the_hub(stack, client):
    username = flows.unique_username("next")
    with flows.new_client(stack) as other:
        flows.signup(stack, other, username)
    # Nothing listens on port 1: were `next` followed off the hub, the request would fail on loopback.
    elsewhere = "http://127.0.0.1:1/stolen"
    page = client.get("/jupyter/hub/login", params={"next": elsewhere})
    page = flows.portal_login(stack, client, username, page=page)
    assert page.status_code == 200 and page.url.host == "localhost", explain(stack, str(flows.urls_of(page)))
    assert not any(url.startswith(elsewhere) for url in flows.urls_of(page)), explain(stack, str(flows.urls_of(page)))
    # Logged in to the hub, /login goes on to a `next` on the hub, and never to one elsewhere.
    again = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/token"}, follow_redirects=False)
    assert (again.status_code, again.headers.get("location")) == (302, "/jupyter/hub/token"), explain(stack, again.text)
    away = client.get("/jupyter/hub/login", params={"next": elsewhere}, follow_redirects=False)
    assert away.status_code == 302 and not away.headers["location"].startswith(elsewhere), explain(stack, away.text)
