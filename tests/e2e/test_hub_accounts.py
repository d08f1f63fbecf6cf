"""Hub users made before the first login (issue 23), against the real portal and hub of the shared stack.

An account the portal makes has its hub user at once, with the name, the classes as groups and the staff role a
login would give; later changes (classes, staff rights, deactivation) reach the hub without a login; calls the hub
missed while it was down are carried out when it is back; and the first login then makes no hub user (its
`created` time and id stay). The hub's own database is read directly (what the hub holds, not what it says).
Run with the Python proxy only: the proxy plays no part in the portal's calls to the hub's API.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.e2e import flows
from tests.e2e.test_lifecycle import set_active, shell
from tests.live import free_port

pytestmark = pytest.mark.parametrize("stack", ["python"], indirect=True)
STAFF_ROLE = "cfps-staff"


def hub_user(stack, username: str) -> dict | None:
    """The hub's row for `username` with its groups and roles, or None."""
    db = sqlite3.connect(f"file:{stack.hub_dir / 'jupyterhub.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT id, admin, created FROM users WHERE name = ?", (username,)).fetchone()
        if row is None:
            return None
        groups = db.execute(
            "SELECT g.name FROM groups g JOIN user_group_map m ON m.group_id = g.id WHERE m.user_id = ?", (row[0],)
        ).fetchall()
        roles = db.execute(
            "SELECT r.name FROM roles r JOIN user_role_map m ON m.role_id = r.id WHERE m.user_id = ?", (row[0],)
        ).fetchall()
    finally:
        db.close()
    return {
        "id": row[0],
        "admin": bool(row[1]),
        "created": row[2],
        "groups": sorted(g for (g,) in groups),
        "roles": sorted(r for (r,) in roles),
    }


def pending_calls(stack) -> str:
    """The portal's queue of hub calls, for a failure's message."""
    code = "from accounts.models import PendingHubCall as P\nfor row in P.objects.values():\n    print(row)\n"
    return stack.manage("shell", "-c", code).stdout or "(none)"


def wait_for_hub_user(stack, username: str, changed=None, **expected) -> dict:
    """The hub user once it matches `expected` (the portal's call runs in its background thread); `changed`: the
    shell run that made the change, whose output a failure shows."""
    found = flows.wait_until(
        lambda: (u := hub_user(stack, username)) and all(u[k] == v for k, v in expected.items()) and u, timeout=10
    )
    if not found:
        said = f"\n--- the change's output ---\n{changed.stdout}{changed.stderr}" if changed else ""
        message = f"hub user {username}: {hub_user(stack, username)}, expected {expected}{said}"
        raise AssertionError(flows.explain(stack, f"{message}\n--- pending hub calls ---\n{pending_calls(stack)}"))
    return found


def test_an_account_has_its_hub_user_before_its_first_login_which_then_only_logs_in(stack, client):
    student = flows.unique_username("pre")
    flows.create_user(stack, student, groups=("class-a",))
    made = wait_for_hub_user(stack, student, groups=["class-a"], roles=["user"], admin=False)

    teacher = flows.unique_username("preteach")
    flows.create_user(stack, teacher, role="teacher", groups=("class-a",))
    wait_for_hub_user(stack, teacher, groups=["class-a"], roles=[STAFF_ROLE, "user"], admin=False)

    flows.hub_login(stack, client, student)
    after = hub_user(stack, student)
    # The login found the user (same row, same creation time) and changed none of what it holds.
    assert after == made, flows.explain(stack, f"the first login changed the hub user: {made} -> {after}")
    assert flows.hub_user_model(client).json()["name"] == student


def test_later_changes_reach_the_hub_user_without_a_login(stack):
    username = flows.unique_username("chg")
    flows.create_user(stack, username, groups=("class-a",))
    first = wait_for_hub_user(stack, username, groups=["class-a"])

    changed = shell(
        stack,
        "from django.contrib.auth.models import Group\nfrom accounts.models import User\n"
        f"u = User.objects.get(username={username!r})\n"
        "u.groups.set([Group.objects.get_or_create(name='class-b')[0]])\n",
    )
    wait_for_hub_user(stack, username, changed, groups=["class-b"], roles=["user"])

    # Made a teacher (a role is a group on the portal, never one on the hub): the staff role, no new group.
    changed = shell(
        stack,
        "from accounts.models import StaffRole, User\n"
        f"u = User.objects.get(username={username!r})\n"
        "u.is_staff = True\nu.save()\nu.groups.add(StaffRole.objects.get(key='teacher').group)\n",
    )
    wait_for_hub_user(stack, username, changed, groups=["class-b"], roles=[STAFF_ROLE, "user"], admin=False)

    set_active(stack, username, False)
    assert flows.wait_until(lambda: hub_user(stack, username) is None, timeout=10), flows.explain(
        stack, "a deactivated account's hub user is still there"
    )
    changed = set_active(stack, username, True)
    again = wait_for_hub_user(stack, username, changed, groups=["class-b"], roles=[STAFF_ROLE, "user"])
    # (the row id may come back: SQLite reuses the highest one once it is deleted; the creation time does not)
    assert again["created"] != first["created"], "re-activation makes a fresh hub user (no old token comes back)"


def test_calls_the_hub_missed_while_down_are_made_when_it_is_back(stack):
    username = flows.unique_username("down")
    # This shell's portal sees the hub's API on a dead port: the call waits in the queue.
    shell(
        stack,
        "from django.contrib.auth.models import Group\nfrom accounts.models import User\n"
        f"u = User.objects.create_user(username={username!r}, password={flows.PASSWORD!r})\n"
        "u.groups.add(Group.objects.get_or_create(name='class-a')[0])\n",
        HUB_PORT=str(free_port()),
    )
    time.sleep(0.5)
    assert hub_user(stack, username) is None
    listed = stack.manage("retry_hub_removals", "--dry-run").stdout
    assert f"would make or update hub user {username} (" in listed, listed

    stack.manage("retry_hub_removals")  # as run.sh does once the hub answers; a portal request would too
    wait_for_hub_user(stack, username, groups=["class-a"], roles=["user"])
    assert username not in stack.manage("retry_hub_removals", "--dry-run").stdout


def test_a_students_hub_token_cannot_use_the_portals_user_call_to_make_itself_staff(stack, client, student):
    """The attack: a student with a hub API token of their own asks the hub to give them the staff role."""
    from tests.e2e.test_lifecycle import mint_hub_token, with_token

    flows.hub_login(stack, client, student)
    token = mint_hub_token(stack, client, student)
    attack = with_token(stack, token, "POST", f"/jupyter/hub/api/cfps/users/{student}", json={"staff": True})
    assert attack.status_code == 403, flows.explain(stack, f"{attack.status_code} {attack.text}")
    assert STAFF_ROLE not in hub_user(stack, student)["roles"]


def test_the_hub_starts_again_while_a_teacher_holds_the_staff_role(stack):
    """The hub killed and started again once a role a login gives is held: JupyterHub 6 refused to start
    (KeyError 'users' in init_role_assignment, again at every restart) until hubconfig/config.py reset the
    authenticator's roles on start-up. The teacher keeps the role."""
    username = flows.unique_username("tch")
    flows.create_user(stack, username)
    shell(
        stack,
        "from accounts.models import StaffRole, User\n"
        f"u = User.objects.get(username={username!r})\n"
        "u.is_staff = True\nu.save()\nu.groups.add(StaffRole.objects.get(key='teacher').group)\n",
    )
    wait_for_hub_user(stack, username, roles=[STAFF_ROLE, "user"])

    killed = stack.hub_proc
    stack.supervisor.remember()  # what the hub started (its proxy, the culler), as run.sh's supervisor notes it
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    stack.restart_hub()
    assert hub_user(stack, username)["roles"] == [STAFF_ROLE, "user"]
