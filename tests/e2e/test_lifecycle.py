"""Account lifecycle against the real portal, hub and proxy: the attacks of issue 10, replayed.

- A hub API token the student made (the hub's own API, with their hub cookie) dies with the deactivation,
  also when the hub was unreachable at that moment, and does not come back with a re-activation.
- A deleted account's name cannot be signed up again; its token and server are gone, its files kept.
- A password change logs the other browser out of the portal and the hub, and keeps this one.
- /o/ refuses a token in the query string, and no code, token or secret reaches the logs.
- The stack's state under var/ is owner-only.
Each test runs once per proxy (conftest.py) with its own users.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from portal.config import containers
from tests.e2e import flows
from tests.e2e.conftest import AUTH_REFRESH_SECONDS
from tests.live import REPO, free_port

explain = flows.explain
path_of = flows.path_of
NEW_PASSWORD = "Changed-cfps-pass-2026"
# The promise: every access ends within this long after the change (the hub's refresh age in production).
LOCKOUT_SECONDS = 60


# --- helpers -------------------------------------------------------------------------------------------
def mint_hub_token(stack, client, username: str) -> str:
    """What a student can do with their hub cookie: make a hub API token (as the hub's token page does)."""
    page = client.get("/jupyter/hub/token")
    assert page.status_code == 200 and path_of(page.url) == "/jupyter/hub/token", explain(
        stack, f"the hub's token page: {page.status_code} {page.url}"
    )
    response = client.post(
        f"/jupyter/hub/api/users/{username}/tokens",
        json={"note": "my own script", "expires_in": 3600},
        headers={"X-XSRFToken": flows.hub_xsrf_token(client)},
    )
    assert response.status_code == 201, explain(stack, f"minting a hub token: {response.status_code} {response.text}")
    return response.json()["token"]


def with_token(stack, token: str, method: str = "GET", path: str = "/jupyter/hub/api/user", **kwargs):
    return flows.request(method, stack.url(path), headers={"Authorization": f"token {token}"}, **kwargs)


def token_works(stack, token: str, username: str) -> bool:
    response = with_token(stack, token)
    return response.status_code == 200 and response.json().get("name") == username


def shell(stack, code: str, **env: str) -> subprocess.CompletedProcess:
    """`manage.py shell -c code` against the stack's database, with `env` on top of the stack's."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, explain(stack, f"shell failed:\n{result.stdout}\n{result.stderr}")
    return result


def set_active(stack, username: str, active: bool, **env: str) -> subprocess.CompletedProcess:
    return shell(
        stack,
        "from accounts.models import User\n"
        f"u = User.objects.get(username={username!r})\n"
        f"u.is_active = {active!r}\n"
        "u.save()\n",
        **env,
    )


def hub_user_status(stack, username: str) -> int:
    return flows.hub_api(stack, f"/users/{username}").status_code


def signed_up_with_token(stack, client, prefix: str) -> tuple[str, str]:
    username = flows.unique_username(prefix)
    flows.signup(stack, client, username)
    flows.hub_login(stack, client, username)
    token = mint_hub_token(stack, client, username)
    assert token_works(stack, token, username), explain(stack, "a fresh hub token must work")
    return username, token


# --- 1. deactivation -------------------------------------------------------------------------------------
def test_a_hub_token_the_student_made_dies_with_the_deactivation_and_stays_dead_after_reactivation(stack, client):
    username, token = signed_up_with_token(stack, client, "tok")
    # What the token could do before the fix, 73 s after the deactivation: mint more tokens.
    second = with_token(stack, token, "POST", f"/jupyter/hub/api/users/{username}/tokens", json={"note": "copy"})
    assert second.status_code == 201, explain(stack, f"a token minting a token: {second.status_code} {second.text}")
    copy = second.json()["token"]

    set_active(stack, username, False)  # the shell, as an operator would: user.save()
    deactivated_at = time.monotonic()
    refused = flows.wait_until(lambda: with_token(stack, token).status_code == 403, timeout=LOCKOUT_SECONDS)
    elapsed = time.monotonic() - deactivated_at
    assert refused, explain(stack, f"{username}'s hub token still works {elapsed:.0f} s after the deactivation")
    assert with_token(stack, copy).status_code == 403, explain(stack, "the token the token made still works")
    assert hub_user_status(stack, username) == 404, explain(stack, "the hub user should be removed")

    set_active(stack, username, True)
    with flows.new_client(stack) as again:
        flows.hub_login(stack, again, username)  # re-activating restores the login...
        assert flows.hub_user_model(again).json()["name"] == username
    assert with_token(stack, token).status_code == 403, explain(stack, "...but not the old token")
    assert with_token(stack, copy).status_code == 403, explain(stack, "...nor the token it made")


def test_a_deactivation_while_the_hub_is_unreachable_is_carried_out_once_the_portal_is_used(stack, client):
    username, token = signed_up_with_token(stack, client, "outage")

    # This shell's portal sees the hub's API on a dead port: the removal cannot be done now.
    set_active(stack, username, False, HUB_PORT=str(free_port()))
    assert token_works(stack, token, username), explain(stack, "the hub never heard of the deactivation")
    listed = stack.manage("retry_hub_removals", "--dry-run").stdout
    assert f"would remove hub user {username} (deactivated" in listed, explain(stack, listed)

    # The portal retries on its next requests (the hub's own auth refresh makes some, any page does too).
    started = time.monotonic()

    def gone():
        httpx.get(stack.url("/"), trust_env=False, timeout=30)
        return with_token(stack, token).status_code == 403

    assert flows.wait_until(gone, timeout=LOCKOUT_SECONDS, interval=1), explain(
        stack, f"the token still works {time.monotonic() - started:.0f} s after the portal got requests again"
    )
    assert "No pending hub calls." in stack.manage("retry_hub_removals").stdout


# --- 2. deletion -------------------------------------------------------------------------------------
def test_a_deleted_accounts_name_cannot_be_taken_again_and_its_token_and_server_are_gone(stack, client):
    username, token = signed_up_with_token(stack, client, "gone")
    flows.wait_for_lab(stack, client, username, client.get("/jupyter/"))
    diary = with_token(
        stack, token, "PUT", f"/jupyter/user/{username}/api/contents/diary.txt",
        json={"type": "file", "format": "text", "content": "private notes"},
    )  # fmt: skip
    assert diary.status_code in (200, 201), explain(stack, f"writing a file with the token: {diary.status_code}")
    home = Path(stack.env["CFPS_VAR_DIR"]) / "users" / username

    staff_name = flows.unique_username("head")
    flows.create_user(stack, staff_name, superuser=True)
    user_id = shell(stack, f"from accounts.models import User; print(User.objects.get(username={username!r}).pk)")
    user_id = user_id.stdout.split()[-1]
    with flows.new_client(stack) as staff:
        flows.portal_login(stack, staff, staff_name)
        confirm = staff.get(f"/admin/accounts/user/{user_id}/delete/")
        # The home volume's name as DockerSpawner gives it (`gone-x` escaped), which the operator would look for.
        assert containers.user_volume(username) in confirm.text and "never be used again" in confirm.text, explain(
            stack, f"the delete confirmation does not say what happens to the hub account:\n{confirm.text[-3000:]}"
        )
        done = flows.post_form(stack, staff, confirm, {"post": "yes"})
        assert done.status_code == 200, explain(stack, f"delete: {done.status_code} {done.url}")

    assert flows.wait_until(lambda: with_token(stack, token).status_code == 403, timeout=LOCKOUT_SECONDS), explain(
        stack, "the deleted user's hub token still works"
    )
    assert hub_user_status(stack, username) == 404, explain(stack, "the deleted user's hub user is still there")
    assert (home / "diary.txt").read_text() == "private notes", "the files are kept (for staff), not deleted"

    with flows.new_client(stack) as newcomer:
        form = newcomer.get("/accounts/signup/")
        page = flows.post_form(
            stack, newcomer, form,
            {"username": username, "password1": flows.PASSWORD, "password2": flows.PASSWORD,
             "invite_code": flows.INVITE_CODE},
        )  # fmt: skip
        assert flows.logged_in_as(page.text) is None, explain(stack, f"{username} was signed up again")
        assert "cannot be used again" in page.text, explain(stack, f"no reason given:\n{page.text[:3000]}")
    assert with_token(stack, token).status_code == 403


# --- 3. password change ------------------------------------------------------------------------------
def test_a_password_change_logs_the_other_browser_out_everywhere_and_keeps_this_one(stack, client):
    username = flows.unique_username("pw")
    flows.signup(stack, client, username)
    flows.hub_login(stack, client, username)
    with flows.new_client(stack) as other:
        flows.hub_login(stack, other, username)  # logs in to the portal on the way
        assert flows.logged_in_as(other.get("/").text) == username
        assert flows.oauth_grants(stack, username)["live_refresh_tokens"] >= 2, explain(stack, "two hub logins")

        form = client.get("/accounts/password_change/")
        changed = flows.post_form(
            stack, client, form,
            {"old_password": flows.PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )  # fmt: skip
        assert changed.status_code == 200 and "/password_change/done/" in path_of(changed.url), explain(
            stack, f"password change ended at {changed.url}"
        )
        assert flows.oauth_grants(stack, username)["live_refresh_tokens"] == 0, explain(
            stack, "refresh tokens survive the password change"
        )
        assert flows.logged_in_as(client.get("/").text) == username, explain(stack, "this browser must stay in")
        assert flows.logged_in_as(other.get("/").text) is None, explain(stack, "the other browser is still in")

        def other_locked_out():
            return path_of(other.get("/jupyter/hub/home").url) == "/accounts/login/"

        assert flows.wait_until(other_locked_out, timeout=AUTH_REFRESH_SECONDS + 10), explain(
            stack, "the other browser still opens the hub after the password change"
        )
    home = client.get("/jupyter/hub/home")  # this browser gets in again without typing anything
    assert path_of(home.url) == "/jupyter/hub/home", explain(stack, f"this browser ended at {home.url}")


# --- 5. tokens only in headers, nothing secret in the logs -------------------------------------------
def test_a_query_string_token_is_refused_and_no_code_token_or_secret_reaches_the_logs(stack, client):
    username = flows.unique_username("logs")
    flows.signup(stack, client, username)
    login = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
    codes = [flows.query_of(url)["code"] for url in flows.urls_of(login) if "code=" in url]
    assert codes, explain(stack, f"no authorization code in the login's redirects: {flows.urls_of(login)}")
    tokens = flows.issue_tokens(stack, client)

    attack = httpx.get(
        stack.url("/o/userinfo/"), params={"access_token": tokens["access_token"]}, trust_env=False, timeout=30
    )
    assert attack.status_code in (400, 401), explain(stack, f"?access_token= gave {attack.status_code}")
    header = httpx.get(
        stack.url("/o/userinfo/"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        trust_env=False,
        timeout=30,
    )
    assert header.status_code == 200, explain(stack, f"the same token in the header: {header.status_code}")
    hub_token = mint_hub_token(stack, client, username)
    in_url = httpx.get(stack.url("/jupyter/hub/api/user"), params={"token": hub_token}, trust_env=False, timeout=30)
    assert in_url.status_code == 403, explain(stack, f"the hub took ?token=: {in_url.status_code}")

    var = Path(stack.env["CFPS_VAR_DIR"])
    secrets = {
        "authorization code": codes,
        "access token": [tokens["access_token"]],
        "refresh token": [tokens["refresh_token"]],
        "id token": [tokens["id_token"]],
        "hub client secret": [flows.hub_client_secret(stack)],
        "hub API token": [stack.hub_admin_token()],
        "student's hub token": [hub_token],
    }
    time.sleep(1)  # the access log line is written after the response
    for log in (stack.portal.log_path, stack.hub_log):
        text = log.read_text(encoding="utf-8", errors="replace")
        for what, values in secrets.items():
            for value in values:
                assert value not in text, f"{what} found in {log.name}"
    assert "access_token=[secret]" in stack.portal.log_path.read_text(), "the refused request is logged, masked"
    assert var.is_dir()


# --- 6. files --------------------------------------------------------------------------------------------
def reachable_by_others(path: Path, root: Path) -> bool:
    """True if a user other than the owner may read `path`: it and every folder between root and it allow it."""
    current = path
    while True:
        mode = stat.S_IMODE(os.lstat(current).st_mode)
        if not mode & 0o077:
            return False
        if current == root or current.parent == current:
            return True
        current = current.parent


def test_the_stacks_state_is_owner_only(stack, client, student):
    flows.wait_for_lab(stack, client, student, client.get("/jupyter/"))
    var = Path(stack.env["CFPS_VAR_DIR"])
    public = {var / "static"}  # collected static files, served to anyone
    for must_exist in (var / "hub" / "jupyterhub.sqlite", var / "users" / student, var / "secrets"):
        assert must_exist.exists(), f"{must_exist} missing"
    exposed = [
        str(path.relative_to(var))
        for path in var.rglob("*")
        if not path.is_symlink() and not any(p in public for p in (path, *path.parents))
        and reachable_by_others(path, var.parent)
    ]  # fmt: skip
    assert exposed == [], f"readable by other users: {exposed[:20]}"
    database = Path(stack.env["DATABASE_URL"].removeprefix("sqlite:///"))
    assert stat.S_IMODE(database.stat().st_mode) == 0o600, "the portal's SQLite database"
    for secret in (var / "secrets").iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret.name
