"""The portal's hub service may make hub users the way a login does, and no more (hubconfig/users.py, config.py)."""

import pytest
from traitlets.config import Config

from hubconfig import users
from hubconfig.config import apply_config
from portal.config import Config as AppConfig
from portal.config.env import Env


def portal_scopes():
    c = Config()
    apply_config(c, AppConfig(Env({"SPAWNER": "local"})))
    return c, next(role["scopes"] for role in c.JupyterHub.load_roles if role["name"] == "portal")


def test_the_portal_can_make_users_and_start_servers_but_never_mint_tokens_or_make_admins():
    c, scopes = portal_scopes()
    assert users.SCOPE in scopes and "servers" in scopes
    for forbidden in ("tokens", "admin:users", "users", "admin:auth_state", "admin:groups", "groups", "admin:servers"):
        assert forbidden not in scopes, forbidden
    assert c.JupyterHub.custom_scopes[users.SCOPE] == users.SCOPE_DEFINITION
    holders = [role["name"] for role in c.JupyterHub.load_roles if users.SCOPE in role.get("scopes", ())]
    assert holders == ["portal"]
    assert (users.URL, users.SyncUserHandler) in c.JupyterHub.extra_handlers


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"groups": "class-a"}', b'{"groups": [""]}', b'{"staff": "yes"}', b'{"admin": true}', b'{"name": "x"}'],
)
def test_the_handler_takes_groups_and_the_staff_mark_only(body):
    with pytest.raises(ValueError):
        users.read_profile(body)


def test_the_handler_reads_groups_and_the_staff_mark():
    assert users.read_profile(b'{"groups": ["b", "a", "a"], "staff": true}') == (["a", "b"], True)
    assert users.read_profile(b"") == ([], False)
