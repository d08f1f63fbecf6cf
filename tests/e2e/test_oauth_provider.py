"""The portal as an OAuth2/OIDC provider, reached like a browser and a client would: through the proxy.

Authorization requests use the hub's real client id and callback URL, from a browser logged in to the
portal, so the only thing wrong in each refused request is the thing the test names.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import flows

explain = flows.explain


# --- 5a/b. PKCE: S256 or nothing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "Code challenge required."),
        ({"code_challenge": None}, "Code challenge required."),
        ({"code_challenge_method": "plain", "code_challenge": "p" * 43}, 'Unsupported "plain" code_challenge_method'),
    ],
    ids=["no-pkce", "method-without-challenge", "plain"],
)
def test_authorize_refuses_requests_without_s256_pkce(stack, client, student, overrides, description):
    params = flows.authorize_params(stack, **overrides)
    response = flows.authorize(stack, client, params)
    location = response.headers.get("location", "")
    answer = flows.query_of(location)
    # The redirect URI is the registered one, so the error goes back to the client (RFC 6749 §4.1.2.1).
    assert response.status_code == 302 and location.startswith(flows.hub_callback_url(stack) + "?"), explain(
        stack, f"expected an error redirect to the hub's callback, got {response.status_code} {location!r}"
    )
    assert "code" not in answer, explain(stack, f"the portal issued a code for {overrides}: {location}")
    assert answer.get("error") == "invalid_request", explain(stack, location)
    assert answer.get("error_description", "").startswith(description), explain(stack, location)
    assert answer.get("state") == params["state"], explain(stack, location)


# --- 5c. never redirect to an unregistered URI -----------------------------------------------------------
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:{other_port}/jupyter/hub/oauth_callback",
        "http://localhost:{port}/jupyter/hub/oauth_callback/extra",
        "http://localhost:{port}/jupyter/hub/oauth_callback?next=/evil",
        "http://127.0.0.1:{port}/jupyter/hub/oauth_callback",  # the portal's host, not the hub's
        "https://localhost:{port}/jupyter/hub/oauth_callback",
        "http://localhost:{port}/jupyter/hub/oauth_callback_evil",
    ],
    ids=["other-port", "extra-path", "extra-query", "other-host", "other-scheme", "longer-path"],
)
def test_authorize_shows_an_error_page_instead_of_redirecting_to_an_unregistered_uri(
    stack, client, student, redirect_uri
):
    port = stack.public_port
    target = redirect_uri.format(port=port, other_port=port + 1 if port < 65535 else port - 1)
    assert target != flows.hub_callback_url(stack), "the table must not list the registered callback itself"
    response = flows.authorize(stack, client, flows.authorize_params(stack, redirect_uri=target))
    assert response.status_code == 400, explain(
        stack,
        f"redirect_uri={target}: expected a 400 error page, got {response.status_code} "
        f"location={response.headers.get('location')!r}",
    )
    assert "location" not in response.headers, explain(
        stack, f"the portal redirected to {response.headers['location']}"
    )
    assert "This sign-in request cannot be accepted" in response.text, explain(stack, response.text[:2000])


# --- 5d. a code works once ------------------------------------------------------------------------------
def test_an_authorization_code_is_exchanged_only_once(stack, client, student):
    code, verifier = flows.authorization_code(stack, client)

    first = flows.exchange_code(stack, code, verifier)
    assert first.status_code == 200, explain(stack, f"first exchange: {first.status_code} {first.text}")
    tokens = first.json()
    assert tokens.get("token_type") == "Bearer" and tokens.get("access_token") and tokens.get("id_token"), explain(
        stack, f"first exchange gave no usable tokens: {tokens}"
    )
    assert flows.jwt_claims(tokens["id_token"])["preferred_username"] == student, explain(stack, str(tokens))

    replay = flows.exchange_code(stack, code, verifier)
    assert replay.status_code == 400, explain(stack, f"replayed code: {replay.status_code} {replay.text}")
    assert replay.json().get("error") == "invalid_grant", explain(stack, f"replayed code: {replay.text}")
    assert "access_token" not in replay.json(), explain(stack, replay.text)


def test_the_token_endpoint_needs_the_code_verifier_that_matches_the_challenge(stack, client, student):
    code, verifier = flows.authorization_code(stack, client)
    wrong_verifier, _ = flows.pkce_pair()
    response = flows.exchange_code(stack, code, wrong_verifier)
    assert response.status_code == 400 and response.json().get("error") == "invalid_grant", explain(
        stack, f"a code with the wrong verifier: {response.status_code} {response.text}"
    )


# --- 7. OIDC discovery and userinfo on the public origin ---------------------------------------------------
def test_oidc_discovery_is_served_on_the_public_origin_and_offers_only_s256(stack):
    response = httpx.get(stack.url("/o/.well-known/openid-configuration"), trust_env=False, timeout=30)
    assert response.status_code == 200, explain(stack, f"discovery: {response.status_code} {response.text[:500]}")
    doc = response.json()
    assert doc["issuer"] == stack.url("/o"), explain(stack, f"issuer {doc['issuer']!r}")
    assert doc["code_challenge_methods_supported"] == ["S256"], explain(
        stack, f"code_challenge_methods_supported: {doc['code_challenge_methods_supported']}"
    )
    for key, path in [
        ("authorization_endpoint", "/o/authorize/"),
        ("token_endpoint", "/o/token/"),
        ("userinfo_endpoint", "/o/userinfo/"),
        ("jwks_uri", "/o/.well-known/jwks.json"),
    ]:
        assert doc[key] == stack.url(path), explain(stack, f"{key} is {doc[key]!r}, not on {stack.base_url}")
    jwks = httpx.get(doc["jwks_uri"], trust_env=False, timeout=30)
    assert jwks.status_code == 200 and jwks.json()["keys"], explain(stack, f"jwks: {jwks.status_code} {jwks.text}")


def test_userinfo_returns_the_portal_claims_for_a_real_access_token(stack, client):
    username = flows.unique_username("claims")
    user_id = flows.create_user(stack, username, groups=("claims-team", "class-b"))
    flows.portal_login(stack, client, username)
    tokens = flows.issue_tokens(stack, client)
    doc = httpx.get(stack.url("/o/.well-known/openid-configuration"), trust_env=False, timeout=30).json()

    response = httpx.get(
        doc["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        trust_env=False,
        timeout=30,
    )
    assert response.status_code == 200, explain(stack, f"userinfo: {response.status_code} {response.text}")
    claims = response.json()
    assert claims.get("sub") == str(user_id), explain(stack, f"sub {claims.get('sub')!r}, user id {user_id}")
    assert claims.get("sub") == flows.jwt_claims(tokens["id_token"])["sub"], explain(stack, str(claims))
    assert claims.get("preferred_username") == username, explain(stack, str(claims))
    assert claims.get("groups") == sorted(["class-b", "claims-team"]), explain(stack, str(claims))
    assert claims.get("is_staff") is False, explain(stack, str(claims))

    anonymous = httpx.get(doc["userinfo_endpoint"], trust_env=False, timeout=30)
    assert anonymous.status_code == 401, explain(stack, f"userinfo without a token: {anonymous.status_code}")


def test_a_hub_login_takes_the_claims_from_the_id_token_without_asking_userinfo(stack, client, student):
    def portal_requests(path: str) -> int:
        return sum(f" {path}" in line for line in stack.portal.log_path.read_text(errors="replace").splitlines())

    tokens, userinfos = portal_requests("/o/token/"), portal_requests("/o/userinfo/")
    flows.hub_login(stack, client, student)
    model = flows.hub_user_model(client)
    assert model.status_code == 200 and model.json()["name"] == student, explain(stack, model.text)
    assert portal_requests("/o/token/") == tokens + 1, explain(stack, "the hub did not exchange one code")
    assert portal_requests("/o/userinfo/") == userinfos, explain(stack, "the hub asked userinfo at login")
