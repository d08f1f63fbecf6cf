"""Hub users made before their first login, published by the hub at /jupyter/hub/api/cfps/users/<name> for the
portal (accounts/hub.py `sync_hub_user`).

Why a handler of our own and not JupyterHub's REST API: a login gives a user the staff role (`cfps-staff`,
hubconfig/config.py) through the authenticator's `manage_roles`, and the REST API has no call that assigns a
role to a user; creating users there needs `admin:users`, which also reads and writes every user's auth state
(the tokens the portal issued), renames users and sets their fields. This handler does one thing, what
JupyterHub's own login does with an authenticated model (`BaseHandler.auth_to_user`), minus the auth state.

Rules:
- Only a token with the custom scope SCOPE gets an answer; hubconfig/config.py grants it to the portal's
  service role alone. No token, a student's token or a token without the scope: 403, as the hub's own API.
- POST {"groups": [names], "staff": bool} makes the user when missing (the authenticator's `add_user`, as a
  login does) and sets exactly what a login with those claims sets: JupyterHub admin never (the `admin`
  flag is set False), the groups (`manage_groups`), the roles (`manage_roles`: "user", plus the staff role
  when `staff`, `PortalOAuthenticator.roles_for`). The first login then changes nothing but the auth state.
- It never creates, reads or deletes tokens, never touches auth state or a server, never renames anyone.
- The answer: {"name", "created", "groups", "roles"}; 400 for a name the authenticator refuses or a bad body.
"""

from __future__ import annotations

import json

from jupyterhub import roles
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.utils import maybe_future
from tornado import web

SCOPE = "custom:cfps:users:sync"
SCOPE_DEFINITION = {
    "description": "Make or update a hub user with the groups and staff role its login would give (the portal)."
}
URL = r"/api/cfps/users/([^/]+)"  # under the hub's prefix: /jupyter/hub/api/cfps/users/<name>


def read_profile(body: bytes) -> tuple[list[str], bool]:
    """The groups and the staff mark from the request's JSON body; ValueError for anything else."""
    data = json.loads(body or b"{}")
    if not isinstance(data, dict) or set(data) - {"groups", "staff"}:
        raise ValueError("expected {groups, staff}")
    groups, staff = data.get("groups", []), data.get("staff", False)
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ValueError("groups must be a list of names")
    if not isinstance(staff, bool):
        raise ValueError("staff must be true or false")
    return sorted(set(groups)), staff


class SyncUserHandler(APIHandler):
    """POST /hub/api/cfps/users/<name>: the user as their login would leave them (module docstring)."""

    async def post(self, user_name):
        # The hub's @needs_scope cannot name a custom scope at import time (hubconfig/memory.py says why).
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if SCOPE not in self.expanded_scopes:
            raise web.HTTPError(403, f"Action is not authorized with current scopes; requires {SCOPE}")
        try:
            groups, staff = read_profile(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        authenticator = self.authenticator
        name = authenticator.normalize_username(user_name)
        if name != user_name or not authenticator.validate_username(name):
            raise web.HTTPError(400, "Invalid username")
        user = self.find_user(name)
        created = user is None
        if created:
            user = self.user_from_username(name)
            try:
                await maybe_future(authenticator.add_user(user))
            except Exception:
                self.log.error("Failed to create user %s", name, exc_info=True)
                self.users.delete(user)
                raise web.HTTPError(400, f"Failed to create user: {name}") from None
        # What auth_to_user does with the model update_auth_model makes at login (hubconfig/authenticator.py).
        if user.admin:
            user.admin = False
        roles.assign_default_roles(self.db, entity=user)
        if authenticator.manage_groups:
            user.sync_groups(groups)
        if authenticator.manage_roles:
            user.sync_roles(authenticator.roles_for(staff))
        self.db.commit()
        self.log.info(
            "Portal %s hub user %s (groups %s, staff %s)", "made" if created else "updated", name, groups, staff
        )
        self.set_status(201 if created else 200)
        self.set_header("Content-Type", "application/json")
        self.write(
            json.dumps(
                {
                    "name": user.name,
                    "created": created,
                    "groups": sorted(g.name for g in user.groups),
                    "roles": sorted(r.name for r in user.roles),
                }
            )
        )
