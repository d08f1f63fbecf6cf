"""The hub's login through the portal reads the user's claims from the ID token of the token response, checked
with the portal's public key; anything that does not check out, and every refresh, asks the userinfo endpoint.

Real keys and real signatures (PyJWT, as the hub uses it). The userinfo endpoint here is a closed port on
loopback, so "asked userinfo" shows as the hub's 503 for a portal that does not answer, and a claim set returned
shows it was not asked.
"""

from __future__ import annotations

import time

import jwt
import pytest
from tornado import web

from hubconfig import authenticator as hub_auth
from hubconfig.config import oidc_public_key
from portal.config import Config
from portal.config.env import Env
from portal.config.keys import new_rsa_private_key_pem, public_key_pem
from tests.live import free_port, run_async

CLIENT_ID = "jupyterhub"
ISSUER = "http://127.0.0.1:8000/o"
# The hub's 503 for a portal that does not answer (hubconfig/templating.py), here for the closed userinfo port.
ASKED_USERINFO = "portal unavailable while Fetching user info"


@pytest.fixture(scope="module")
def keypair():
    private = new_rsa_private_key_pem()
    return private, public_key_pem(private)


@pytest.fixture
def authenticator(keypair):
    return hub_auth.PortalOAuthenticator(
        client_id=CLIENT_ID,
        id_token_public_key=keypair[1],
        id_token_issuer=ISSUER,
        userdata_url=f"http://127.0.0.1:{free_port()}/o/userinfo/",  # nothing listens there
    )


def id_token(private_pem: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": CLIENT_ID, "sub": "7", "iat": now, "exp": now + 3600,
        "preferred_username": "meiling", "groups": ["class-a"], "is_staff": False,
    }  # fmt: skip
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private_pem, algorithm="RS256")


def user_of(authenticator, token_info, fresh=True):
    async def convert():
        marker = hub_auth._FRESH_TOKEN_RESPONSE.set(fresh)  # what authenticate() sets around a fresh response
        try:
            return await authenticator.token_to_user(token_info)
        finally:
            hub_auth._FRESH_TOKEN_RESPONSE.reset(marker)

    return run_async(convert, timeout=30)


def test_a_login_takes_the_claims_from_a_checked_id_token_without_asking_userinfo(authenticator, keypair):
    info = user_of(authenticator, {"id_token": id_token(keypair[0]), "access_token": "a", "token_type": "Bearer"})
    assert (info["preferred_username"], info["groups"], info["is_staff"]) == ("meiling", ["class-a"], False)


@pytest.mark.parametrize(
    "forged",
    [
        {"key": "other"},
        {"aud": "someone-else"},
        {"iss": "http://evil.example/o"},
        {"exp": int(time.time()) - 60},
        {"sub": None},
        {"alg": "none"},
    ],
    ids=["other-key", "audience", "issuer", "expired", "no-sub", "unsigned"],
)
def test_an_id_token_that_does_not_check_out_is_not_believed(authenticator, keypair, forged):
    forged = dict(forged)
    if forged.pop("key", None):
        token = id_token(new_rsa_private_key_pem(), preferred_username="teacher", is_staff=True)
    elif forged.pop("alg", None):
        token = jwt.encode({"iss": ISSUER, "aud": CLIENT_ID, "sub": "1", "exp": int(time.time()) + 60,
                            "preferred_username": "teacher", "is_staff": True}, key=None, algorithm="none")  # fmt: skip
    else:
        token = id_token(keypair[0], **forged)
    with pytest.raises(web.HTTPError, match=ASKED_USERINFO):  # it asked the (closed) userinfo endpoint instead
        user_of(authenticator, {"id_token": token, "access_token": "a", "token_type": "Bearer"})


def test_a_refresh_asks_userinfo_even_with_a_good_id_token(authenticator, keypair):
    # A deactivation or a changed staff status must reach the hub: the stored ID token's claims never change.
    with pytest.raises(web.HTTPError, match=ASKED_USERINFO):
        user_of(authenticator, {"id_token": id_token(keypair[0]), "access_token": "a", "token_type": "Bearer"}, False)


def test_the_hub_config_carries_the_public_half_of_the_portals_signing_key():
    public = oidc_public_key(Config(Env({})))
    assert public.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in public
    assert oidc_public_key(Config(Env({"APP_PROFILE": "prod"}))) == ""  # not readable: logins ask userinfo


STAFF_ROLE = {"name": "cfps-staff", "description": "test", "scopes": ["admin-ui", "list:users"]}


def auth_model_of(authenticator, is_staff: bool) -> dict:
    model = {"name": "meiling", "admin": None, "auth_state": {"oauth_user": {"is_staff": is_staff}}}
    return run_async(lambda: authenticator.update_auth_model(model), timeout=30)


@pytest.mark.parametrize("is_staff", [True, False], ids=["staff", "student"])
def test_nobody_is_made_jupyterhubs_admin_and_staff_get_the_staff_role(authenticator, is_staff):
    authenticator.staff_role = STAFF_ROLE
    model = auth_model_of(authenticator, is_staff)
    assert model["admin"] is False  # explicit: an account that was admin before loses it
    assert model["roles"] == [hub_auth.user_role(), *([STAFF_ROLE] if is_staff else [])]
    assert hub_auth.user_role()["scopes"] == ["self"]


def test_on_a_shared_hub_origin_staff_get_no_role_beyond_a_students(authenticator):
    authenticator.staff_role = {**STAFF_ROLE, "scopes": []}
    assert auth_model_of(authenticator, True)["roles"] == [hub_auth.user_role()]
    # (still defined at start, with no scopes: whoever held it before holds nothing)
    assert run_async(authenticator.load_managed_roles, timeout=30) == [{**STAFF_ROLE, "scopes": []}]
