"""The portal as an OAuth2/OIDC provider (django-oauth-toolkit) for JupyterHub.

Rules:
- Claims: `sub` (user id), `preferred_username` (the case-folded username, which the hub uses as the
  JupyterHub name), `name`, `email`, `groups` (Django group names) and `is_staff` (hub admin marker).
- An inactive account is refused at every step, even with a token issued before it was deactivated:
  deactivation also revokes its tokens (accounts.signals), this is the second line.
- Credentials travel in the Authorization header or the POST body only: any endpoint of the provider
  refuses one in its query string (RefuseQueryCredentialsMiddleware), where it would be logged.
"""

from oauth2_provider.oauth2_validators import OAuth2Validator


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
            "groups": lambda request: sorted(request.user.groups.values_list("name", flat=True)),
            "is_staff": lambda request: bool(request.user.is_staff),
        }

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        # Exactly one of the registered strings. DOT also accepts any port on a loopback host (RFC 8252's
        # rule for native apps); on a shared server another local process could listen on such a port.
        return redirect_uri in request.client.redirect_uris.split()

    def validate_bearer_token(self, token, scopes, request):
        valid = super().validate_bearer_token(token, scopes, request)
        return valid and bool(getattr(request.user, "is_active", False))

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        valid = super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)
        return valid and bool(getattr(request.user, "is_active", False))


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
