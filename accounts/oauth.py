"""The portal as an OAuth2/OIDC provider (django-oauth-toolkit) for JupyterHub.

Rules:
- Claims: `sub` (user id), `preferred_username` (the case-folded username, which the hub uses as the
  JupyterHub name), `name`, `email`, `groups` (the names of the user's classes and teams, never a staff role:
  each becomes a hub group and a team volume) and `is_staff`, the hub admin marker: true for active staff
  with the hub admin permission (teachers and superusers, not TAs: `accounts.roles`).
- An inactive account is refused at every step, even with a token issued before it was deactivated:
  deactivation also revokes its tokens (accounts.signals), this is the second line.
- Credentials travel in the Authorization header or the POST body only: any endpoint of the provider
  refuses one in its query string (RefuseQueryCredentialsMiddleware), where it would be logged.
- A code exchange reads its grant once (django-oauth-toolkit reads it eight times, one query each, for the
  scopes, the expiry, the redirect URI, the PKCE challenge and method, the nonce and the resources) and uses the
  ID token it has just saved instead of decoding and fetching it again: the token endpoint is the costliest
  step of a class's logins. The grant is kept on the oauthlib request, so it lives for one token request only.
- A login whose `next` is the authorization endpoint gets that endpoint's answer at once (`authorize_at_once`):
  the same view, with the same checks, called in the login's response instead of one browser round trip later.
- A staff session that has not given its second factor is answered no authorization either (accounts/otp.py);
  after the code, the browser comes back to the same authorization.
- A person whose shared-PC login has idled out (accounts/sessions.py) has every token revoked at the next
  userinfo call or refresh, so the hub's next auth refresh ends their hub session.
- A user who must still replace a staff-given temporary password (`must_change_password`) is answered no
  authorization (the endpoint itself sends them to the password-change page, so no path round the
  middleware gets a code), the token endpoint takes none of their codes or refresh tokens, and userinfo none
  of their access tokens (the hub's next auth refresh then ends its session): the printed password never
  opens JupyterLab.
"""

import base64
import contextvars
import copy
import json
from urllib.parse import urlsplit

from django.http import QueryDict
from django.urls import Resolver404, resolve
from oauth2_provider import views as oauth2_views
from oauth2_provider.models import get_grant_model
from oauth2_provider.oauth2_validators import OAuth2Validator

from accounts import hub, otp, roles, sessions
from accounts.middleware import password_change_required

# The ID token the current token request saved (PortalOAuth2Validator._create_access_token sets it for the
# length of one call; DOT's _load_id_token has no request argument to carry it).
_SAVED_ID_TOKEN = contextvars.ContextVar("cfps_saved_id_token", default=None)


def _unverified_jti(token: str) -> str | None:
    """The `jti` claim of a JWT, without checking it: only to recognise a token this request just made."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("jti")
    except (IndexError, ValueError, AttributeError):
        return None


def _may_use_tokens(user) -> bool:
    """Active, and not waiting to replace a temporary password (module rules)."""
    return bool(getattr(user, "is_active", False)) and not getattr(user, "must_change_password", True)


class PortalOAuth2Validator(OAuth2Validator):
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "groups": "profile",
        "is_staff": "profile",
    }

    def get_additional_claims(self):
        # Without a `request` argument DOT also lists these claims in the discovery document.
        return {
            "preferred_username": lambda request: request.user.username,
            "name": lambda request: request.user.get_full_name() or request.user.username,
            "email": lambda request: request.user.email,
            # The same groups a hub user made before its first login gets (accounts/hub.py hub_profile).
            "groups": lambda request: hub.hub_groups(request.user),
            "is_staff": lambda request: roles.is_hub_admin(request.user),
        }

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        # Exactly one of the registered strings. DOT also accepts any port on a loopback host (RFC 8252's
        # rule for native apps); on a shared server another local process could listen on such a port.
        return redirect_uri in request.client.redirect_uris.split()

    def validate_bearer_token(self, token, scopes, request):
        valid = super().validate_bearer_token(token, scopes, request)
        return valid and _may_use_tokens(request.user) and not sessions.shared_login_idled_out(request.user)

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        return valid and _may_use_tokens(request.user) and not sessions.shared_login_idled_out(request.user)

    # --- one read of the grant per code exchange (module docstring) ---
    def _grant(self, code, client, request):
        """The grant of `code` for `client` (an authenticated client), or None; one query per token request."""
        memo = getattr(request, "cfps_grants", None)
        if memo is None:
            memo = request.cfps_grants = {}
        if (code, client.pk) not in memo:
            grants = get_grant_model().objects.select_related("user")
            memo[(code, client.pk)] = grants.filter(code=code, application=client).first()
        return memo[(code, client.pk)]

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        grant = self._grant(code, client, request)
        if grant is None or grant.is_expired() or not _may_use_tokens(grant.user):
            return False
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        grant = self._grant(code, client, request)
        return grant is not None and grant.redirect_uri_allowed(redirect_uri)

    def get_code_challenge(self, code, request):
        grant = self._grant(code, request.client, request)
        return (grant.code_challenge or None) if grant else None

    def get_code_challenge_method(self, code, request):
        grant = self._grant(code, request.client, request)
        return (grant.code_challenge_method or None) if grant else None

    # oauthlib asks for the scopes before it authenticates the client (to choose the OpenID Connect grant):
    # then DOT's own lookup by code alone answers.
    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        if request.client is None:
            return super().get_authorization_code_scopes(client_id, code, redirect_uri, request)
        grant = self._grant(code, request.client, request)
        return grant.scope.split() if grant and grant.scope else []

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        if request.client is None:
            return super().get_authorization_code_nonce(client_id, code, redirect_uri, request)
        grant = self._grant(code, request.client, request)
        return (grant.nonce or None) if grant else None

    def _save_id_token(self, jti, request, expires, *args, **kwargs):
        id_token = super()._save_id_token(jti, request, expires, *args, **kwargs)
        request.cfps_id_token = id_token
        return id_token

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        saved = _SAVED_ID_TOKEN.set(getattr(request, "cfps_id_token", None))
        try:
            return super()._create_access_token(expires, request, token, source_refresh_token)
        finally:
            _SAVED_ID_TOKEN.reset(saved)

    def _load_id_token(self, token):
        saved = _SAVED_ID_TOKEN.get()
        if saved is not None and _unverified_jti(token) == saved.jti:
            return saved
        return super()._load_id_token(token)


class AuthorizationView(oauth2_views.AuthorizationView):
    """DOT's authorize endpoint, which answers no user who must first change a temporary password, and no staff
    session that has not given its second factor (accounts/otp.py: staff are hub admins)."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and (
            refused := password_change_required(request) or otp.verification_required(request)
        ):
            return refused
        return super().dispatch(request, *args, **kwargs)


def revoke_all_tokens(user) -> int:
    """End every OAuth grant the user holds; returns how many tokens were revoked."""
    from oauth2_provider.models import (
        get_access_token_model,
        get_grant_model,
        get_id_token_model,
        get_refresh_token_model,
    )

    count = 0
    for refresh in get_refresh_token_model().objects.filter(user=user, revoked__isnull=True):
        refresh.revoke()  # also revokes its access token
        count += 1
    access = get_access_token_model().objects.filter(user=user)
    count += access.count()
    access.delete()
    get_grant_model().objects.filter(user=user).delete()
    get_id_token_model().objects.filter(user=user).delete()
    return count


# Credentials that must never travel in a URL under /o/: URLs land in access logs, browser history and Referer
# headers. RFC 6750 allows bearer tokens in the query only as a last resort, and DOT's userinfo view still
# reads them there (its ACCESS_TOKEN_TRANSPORT setting guards only the protected-resource decorator).
QUERY_CREDENTIALS = frozenset({"access_token", "refresh_token", "client_secret", "code_verifier", "code", "token"})


class RefuseQueryCredentialsMiddleware:
    """Answers 400 invalid_request to any provider endpoint (the `oauth2_provider` URL namespace) that is
    sent a credential in its query string, before the endpoint reads it. Headers and POST bodies only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is None or "oauth2_provider" not in match.namespaces:
            return None
        found = sorted(QUERY_CREDENTIALS.intersection(request.GET))
        if not found:
            return None
        from django.http import JsonResponse

        return JsonResponse(
            {
                "error": "invalid_request",
                "error_description": f"send {', '.join(found)} in the Authorization header or the POST body, "
                "never in the URL",
            },
            status=400,
            headers={"Cache-Control": "no-store"},
        )


def authorize_at_once(request, response):
    """`response` is a login's redirect to `next`. When `next` is the provider's authorize endpoint on this
    portal, return what that endpoint answers the now logged-in browser (for the hub: the redirect back to its
    callback with a code), with the login's cookies; anything else, or any answer but a redirect (a consent
    page, say), leaves the login's own redirect. The endpoint runs as a GET of exactly that URL would, and one
    with a credential in its query string is left to the redirect, where RefuseQueryCredentialsMiddleware
    refuses it."""
    target = urlsplit(response.get("Location", "")) if response.status_code == 302 else None
    if target is None or target.scheme or target.netloc:
        return response
    try:
        match = resolve(target.path)
    except Resolver404:
        return response
    query = QueryDict(target.query)
    if match.view_name != "oauth2_provider:authorize" or QUERY_CREDENTIALS.intersection(query):
        return response
    inner = copy.copy(request)
    inner.method, inner.GET, inner.POST = "GET", query, QueryDict()
    inner.path = inner.path_info = target.path
    inner.META = {**request.META, "REQUEST_METHOD": "GET", "QUERY_STRING": target.query, "PATH_INFO": target.path}
    inner.resolver_match = match
    answer = match.func(inner, *match.args, **match.kwargs)
    if answer.status_code not in (302, 303):
        return response
    for name, morsel in response.cookies.items():
        answer.cookies[name] = morsel
    return answer
