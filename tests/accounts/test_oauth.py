"""The portal as OAuth2/OIDC provider, in-process: PKCE rules, claims, consent, token rotation, revocation
on deactivation, and what a login costs. tests/e2e repeats the core of it through the real hub."""

import base64
import hashlib
import json
import secrets
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from jwcrypto import jwk, jwt
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from tests.conftest import PASSWORD

User = get_user_model()
Application = get_application_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
AUTHORIZE = reverse("oauth2_provider:authorize")
TOKEN = reverse("oauth2_provider:token")
USERINFO = reverse("oauth2_provider:user-info")


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def hub_app(db):
    call_command("ensure_hub_client", verbosity=0)
    return Application.objects.get(client_id=settings.HUB_CLIENT_ID)


def authorize_params(challenge, **overrides):
    params = {
        "response_type": "code",
        "client_id": settings.HUB_CLIENT_ID,
        "redirect_uri": settings.TOPOLOGY.hub_callback_url,
        "scope": "openid profile email",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def get_code(client, challenge, **overrides):
    response = client.get(AUTHORIZE, authorize_params(challenge, **overrides))
    assert response.status_code == HTTPStatus.FOUND, response.content[:500]
    query = parse_qs(urlsplit(response["Location"]).query)
    assert "code" in query, response["Location"]
    return query["code"][0]


def exchange(client, code, verifier, secret=None, redirect_uri=None):
    return client.post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or settings.TOPOLOGY.hub_callback_url,
            "client_id": settings.HUB_CLIENT_ID,
            "client_secret": secret or settings.HUB_CLIENT_SECRET,
            "code_verifier": verifier,
        },
    )


def full_login(client, user_password=PASSWORD, username="student9"):
    """Log in on the portal, authorize the hub, exchange the code: everything one student login does."""
    assert client.post(reverse("login"), {"username": username, "password": user_password}).status_code == 302
    verifier, challenge = pkce_pair()
    response = exchange(client, get_code(client, challenge), verifier)
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def test_hub_client_skips_consent_and_gets_a_code_with_issuer(client, student, hub_app):
    client.force_login(student)
    _, challenge = pkce_pair()
    response = client.get(AUTHORIZE, authorize_params(challenge))
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.TOPOLOGY.hub_callback_url
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and query["iss"] == [f"{settings.PUBLIC_URL}/o"]


def test_anonymous_authorize_goes_to_the_portal_login(client, hub_app):
    _, challenge = pkce_pair()
    response = client.get(AUTHORIZE, authorize_params(challenge))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": "S512"}, "invalid_request"),
        ({"response_type": "token"}, "unauthorized_client"),
    ],
    ids=["no pkce", "no method", "plain", "unknown method", "implicit grant"],
)
def test_authorize_without_s256_pkce_is_refused(client, student, hub_app, overrides, error):
    client.force_login(student)
    _, challenge = pkce_pair()
    response = client.get(AUTHORIZE, authorize_params(challenge, **overrides))
    location = response.get("Location", "")
    assert "code=" not in location
    assert error in location or error in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example/jupyter/hub/oauth_callback",
        "http://127.0.0.1:8000/jupyter/hub/oauth_callback/extra",
        "http://127.0.0.1:8001/jupyter/hub/oauth_callback",
        "http://127.0.0.1:8000/jupyter/hub/oauth_callback?x=1",
        "http://127.0.0.1:8000/jupyter/hub/OAUTH_CALLBACK",
    ],
)
def test_redirect_uri_must_match_exactly_and_is_never_followed_otherwise(client, student, hub_app, redirect_uri):
    client.force_login(student)
    _, challenge = pkce_pair()
    response = client.get(AUTHORIZE, authorize_params(challenge, redirect_uri=redirect_uri))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Location" not in response


def test_code_is_single_use_and_needs_the_right_verifier(client, student, hub_app):
    client.force_login(student)
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    assert exchange(client, code, "x" * 50).status_code == HTTPStatus.BAD_REQUEST  # wrong verifier
    code = get_code(client, challenge)
    assert exchange(client, code, verifier).status_code == HTTPStatus.OK
    replay = exchange(client, code, verifier)
    assert replay.status_code == HTTPStatus.BAD_REQUEST
    assert replay.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_refused(client, student, hub_app):
    client.force_login(student)
    verifier, challenge = pkce_pair()
    response = exchange(client, get_code(client, challenge), verifier, secret="not-the-secret")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_userinfo_and_id_token_carry_our_claims(client, hub_app):
    user = User.objects.create_user(username="MeiLing", password=PASSWORD, email="ml@example.edu.cn", first_name="美玲")
    user.groups.add(Group.objects.create(name="team-income"), Group.objects.create(name="class-a"))
    tokens = full_login(client, username="meiling")
    info = client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    expected = {
        "sub": str(user.pk),
        "preferred_username": "meiling",
        "name": "美玲",
        "email": "ml@example.edu.cn",
        "groups": ["class-a", "team-income"],
        "is_staff": False,
    }
    assert {k: info.get(k) for k in expected} == expected
    keys = client.get(reverse("oauth2_provider:jwks-info")).json()
    id_token = jwt.JWT(jwt=tokens["id_token"], key=jwk.JWKSet.from_json(json.dumps(keys)), expected_type="JWS")
    claims = json.loads(id_token.claims)
    assert claims["iss"] == f"{settings.PUBLIC_URL}/o" and claims["aud"] == settings.HUB_CLIENT_ID
    assert claims["preferred_username"] == "meiling" and claims["groups"] == ["class-a", "team-income"]


@pytest.mark.parametrize(
    ("role", "hub_admin"),
    [("teacher", True), ("ta", False), ("superuser", True), ("staff without a role", False)],
)
def test_the_hub_admin_marker_is_for_teachers_and_superusers_only(client, hub_app, make_staff, role, hub_admin):
    if role in ("teacher", "ta"):
        user = make_staff("teacher-li", role)
    else:
        user = User.objects.create_user(username="teacher-li", password=PASSWORD, is_staff=True)
        user.is_superuser = role == "superuser"
        user.save()
    tokens = full_login(client, username="teacher-li")
    info = client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    assert info["is_staff"] is hub_admin
    assert info["groups"] == []  # a role is never a hub group


def test_the_groups_claim_lists_classes_but_never_a_staff_role(client, hub_app, staff_roles):
    student = User.objects.create_user(username="meiling", password=PASSWORD)
    # Only a superuser can do this (accounts.roles); the hub still must not take the role for a team.
    student.groups.add(staff_roles["ta"], Group.objects.create(name="class-a"))
    tokens = full_login(client, username="meiling")
    info = client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    assert (info["groups"], info["is_staff"]) == (["class-a"], False)


def test_discovery_offers_only_s256_and_the_public_issuer(client, hub_app):
    doc = client.get("/o/.well-known/openid-configuration").json()
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"sub", "preferred_username", "groups", "is_staff", "email"} <= set(doc["claims_supported"])
    assert doc["issuer"] == f"{settings.PUBLIC_URL}/o"


def test_refresh_tokens_rotate_and_a_replayed_one_revokes_the_family(client, student, hub_app):
    tokens = full_login(client)

    def refresh(token):
        return client.post(
            TOKEN,
            {
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": settings.HUB_CLIENT_ID,
                "client_secret": settings.HUB_CLIENT_SECRET,
            },
        )

    rotated = refresh(tokens["refresh_token"])
    assert rotated.status_code == HTTPStatus.OK
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert refresh(tokens["refresh_token"]).status_code == HTTPStatus.BAD_REQUEST  # replay of the old one
    newest = rotated.json()["access_token"]
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {newest}").status_code == HTTPStatus.UNAUTHORIZED


def test_deactivating_a_user_revokes_their_tokens(client, student, hub_app):
    tokens = full_login(client)
    assert AccessToken.objects.filter(user=student).exists()
    student.is_active = False
    student.save()
    assert not AccessToken.objects.filter(user=student).exists()
    assert not RefreshToken.objects.filter(user=student, revoked__isnull=True).exists()
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401


def test_inactive_users_token_is_refused_even_if_it_was_not_revoked(client, student, hub_app):
    tokens = full_login(client)
    User.objects.filter(pk=student.pk).update(is_active=False)  # bypasses save(), so nothing was revoked
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401


def test_an_inactive_users_code_is_refused_even_if_its_grant_was_not_deleted(client, student, hub_app):
    client.force_login(student)
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    User.objects.filter(pk=student.pk).update(is_active=False)  # bypasses save(): the grant is still there
    response = exchange(client, code, verifier)
    assert response.status_code == HTTPStatus.BAD_REQUEST and response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user=student).exists()


def test_a_code_exchange_reads_its_grant_once_and_links_the_id_token_it_made(
    client, student, hub_app, django_assert_max_num_queries
):
    client.force_login(student)
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    # DOT alone: 21 queries, 8 of them the same grant; the ID token decoded and fetched again (PortalOAuth2Validator).
    with django_assert_max_num_queries(14):
        response = exchange(Client(), code, verifier)  # the hub's back channel: no portal session
    assert response.status_code == HTTPStatus.OK, response.content
    claims = json.loads(base64.urlsafe_b64decode(response.json()["id_token"].split(".")[1] + "=="))
    access = AccessToken.objects.select_related("id_token").get(user=student)
    assert access.id_token is not None and str(access.id_token.jti) == claims["jti"]


def login_with_next(client, next_url):
    return client.post(reverse("login"), {"username": "student9", "password": PASSWORD, "next": next_url})


def test_a_login_coming_from_the_hub_answers_its_authorization_at_once(client, student, hub_app):
    from urllib.parse import urlencode

    verifier, challenge = pkce_pair()
    response = login_with_next(client, f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}")
    # Straight back to the hub's callback with a code, not via /o/authorize/ one round trip later.
    location = urlsplit(response["Location"])
    assert response.status_code == HTTPStatus.FOUND
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.TOPOLOGY.hub_callback_url
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and query["iss"] == [f"{settings.PUBLIC_URL}/o"]
    assert {settings.SESSION_COOKIE_NAME, "cfps_device"} <= set(response.cookies)  # the login's own cookies
    tokens = exchange(Client(), query["code"][0], verifier)
    assert tokens.status_code == HTTPStatus.OK and tokens.json()["id_token"]


def test_a_logged_in_browser_sent_to_the_login_page_by_the_hub_goes_straight_back_with_a_code(client, student, hub_app):
    from urllib.parse import urlencode

    client.force_login(student)
    _, challenge = pkce_pair()
    response = client.get(reverse("login"), {"next": f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}"})
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == settings.TOPOLOGY.hub_callback_url
    assert parse_qs(location.query)["state"] == ["s1"] and "code" in parse_qs(location.query)


# --- a staff-given temporary password opens nothing but the password-change page ---------------------------
@pytest.fixture
def temporary(student):
    from accounts import setpassword

    return setpassword.set_temporary_password(student)


def test_logging_in_through_the_hub_with_a_temporary_password_gives_no_code(client, student, hub_app, temporary):
    from urllib.parse import urlencode

    _, challenge = pkce_pair()
    next_url = f"{AUTHORIZE}?{urlencode(authorize_params(challenge))}"
    response = client.post(reverse("login"), {"username": "student9", "password": temporary, "next": next_url})
    # Logged in, but sent to choose a password instead of back to the hub with a code.
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("password_change")
    assert "code" not in parse_qs(urlsplit(response["Location"]).query)
    assert not get_grant_model().objects.exists()
    # With that session, the authorize endpoint (asked directly, or through the login page) answers no code.
    for path, params in ((AUTHORIZE, authorize_params(challenge)), (reverse("login"), {"next": next_url})):
        again = client.get(path, params)
        assert again.status_code == HTTPStatus.FOUND and again["Location"] == reverse("password_change"), path
    assert not get_grant_model().objects.exists()


def test_the_authorize_view_itself_answers_no_one_who_must_change_a_temporary_password(rf, student, hub_app, temporary):
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.oauth import AuthorizationView

    _, challenge = pkce_pair()
    request = rf.get(AUTHORIZE, authorize_params(challenge))  # no middleware on this path, as in a login's response
    request.user, request.session = student, SessionStore()
    request._messages = FallbackStorage(request)
    response = AuthorizationView.as_view()(request)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("password_change")
    assert not get_grant_model().objects.exists()


def test_no_code_refresh_or_access_token_works_for_someone_who_must_change_the_password(client, student, hub_app):
    tokens = full_login(client)
    client.force_login(student)
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    # Staff tick "must change password" on the user's page: the password (so no token) changes only later.
    student.must_change_password = True
    student.save()
    response = exchange(Client(), code, verifier)
    assert response.status_code == HTTPStatus.BAD_REQUEST and response.json()["error"] == "invalid_grant"
    refreshed = Client().post(
        TOKEN,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": settings.HUB_CLIENT_ID,
            "client_secret": settings.HUB_CLIENT_SECRET,
        },
    )
    assert refreshed.status_code == HTTPStatus.BAD_REQUEST and refreshed.json()["error"] == "invalid_grant"
    # The hub's auth refresh asks userinfo with its access token: refused too, so the hub's session ends.
    userinfo = Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == HTTPStatus.UNAUTHORIZED


def test_after_choosing_a_password_the_hub_login_answers_at_once_again(client, student, hub_app, temporary):
    client.post(reverse("login"), {"username": "student9", "password": temporary})
    changed = client.post(
        reverse("password_change"),
        {"old_password": temporary, "new_password1": "Survey-panel-2026", "new_password2": "Survey-panel-2026"},
    )
    assert changed.status_code == HTTPStatus.FOUND
    verifier, challenge = pkce_pair()
    assert exchange(Client(), get_code(client, challenge), verifier).status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "next_url",
    [
        "/o/authorize/?client_id=dashboard&response_type=code&scope=openid&code_challenge_method=S256"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&redirect_uri=https%3A%2F%2Fdashboard.example.edu.cn%2Fcallback",  # a consent page: the login's redirect
        "/o/authorize/?code=stolen&client_id=jupyterhub",  # a credential in the URL: the middleware's 400, later
        "/accounts/password/change/",
    ],
    ids=["consent", "credential-in-query", "not-authorize"],
)
def test_a_login_leaves_every_other_next_to_a_plain_redirect(client, student, hub_app, next_url):
    Application.objects.create(
        name="Course dashboard", client_id="dashboard", client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://dashboard.example.edu.cn/callback", skip_authorization=False,
    )  # fmt: skip
    response = login_with_next(client, next_url)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == next_url
    assert not get_grant_model().objects.exists()


def test_other_clients_get_our_consent_page(client, student):
    Application.objects.create(
        name="Course dashboard",
        client_id="dashboard",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://dashboard.example.edu.cn/callback",
        skip_authorization=False,
    )
    client.force_login(student)
    _, challenge = pkce_pair()
    params = authorize_params(
        challenge, client_id="dashboard", redirect_uri="https://dashboard.example.edu.cn/callback", scope="openid"
    )
    page = client.get(AUTHORIZE, params)
    assert page.status_code == HTTPStatus.OK
    assert "Course dashboard" in page.text and 'name="allow"' in page.text
    assert '<html lang="zh-hans">' in page.text


class CountingPBKDF2Hasher(PBKDF2PasswordHasher):
    """The real PBKDF2 hasher, counting how often it runs (every PBKDF2 computation, including the
    one inside verify(), goes through encode())."""

    calls = 0

    def encode(self, password, salt, iterations=None):
        type(self).calls += 1
        return super().encode(password, salt, iterations)


def test_a_full_login_costs_exactly_one_slow_password_hash(client, hub_app, settings):
    settings.PASSWORD_HASHERS = [
        "tests.accounts.test_oauth.CountingPBKDF2Hasher",
        "accounts.hashers.ClientSecretHasher",
    ]
    User.objects.create_user(username="counted", password=PASSWORD)
    assert hub_app.client_secret.startswith("cfps_client_sha256$")  # stored hashed, not in clear
    CountingPBKDF2Hasher.calls = 0
    full_login(client, username="counted")
    assert CountingPBKDF2Hasher.calls == 1  # the student's password; the client secret used SHA-256


def test_ensure_hub_client_is_idempotent_and_follows_env(hub_app, settings):
    from io import StringIO

    out = StringIO()
    call_command("ensure_hub_client", stdout=out)
    assert "up to date" in out.getvalue()
    before = Application.objects.get(pk=hub_app.pk).client_secret
    settings.TOPOLOGY = settings.TOPOLOGY.__class__(
        **{
            **settings.TOPOLOGY.__dict__,
            "public_url": "https://cfps.example.edu.cn",
            "hub_origin": "https://hub.cfps.example.edu.cn",
        }
    )
    out = StringIO()
    call_command("ensure_hub_client", update_urls=True, stdout=out)
    app = Application.objects.get(pk=hub_app.pk)
    assert "updated" in out.getvalue()
    assert app.redirect_uris == "https://hub.cfps.example.edu.cn/jupyter/hub/oauth_callback"
    assert app.post_logout_redirect_uris == "https://cfps.example.edu.cn/"
    assert Application.objects.count() == 1 and app.skip_authorization
    assert app.client_secret == before  # secret unchanged, so not rehashed


def test_a_port_override_in_one_shell_does_not_silently_reregister_the_hub(hub_app, settings):
    """`PORT=8123 ./run.sh`, then a plain `manage.py bootstrap` in another shell: refused in one line."""
    registered = Application.objects.get(pk=hub_app.pk).redirect_uris
    settings.TOPOLOGY = settings.TOPOLOGY.__class__(
        **{**settings.TOPOLOGY.__dict__, "hub_origin": "http://localhost:8123", "public_url": "http://127.0.0.1:8123"}
    )
    with pytest.raises(CommandError) as failure:
        call_command("bootstrap")
    message = str(failure.value)
    assert "\n" not in message and registered in message and "--update-urls" in message and "PORT" in message
    assert Application.objects.get(pk=hub_app.pk).redirect_uris == registered
