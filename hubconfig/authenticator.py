"""Log in to the hub through the portal (OAuth2 + OIDC userinfo), with portal staff in the hub's staff role,
and log out of both from the hub's side.

Rules:
- The portal's `is_staff` claim decides who holds `staff_role` (hubconfig/config.py: the admin page, servers,
  never other users' auth state or tokens), on every login and every auth refresh, so granting or removing
  staff status in the Django admin reaches the hub within `auth_refresh_age`. Nobody is JupyterHub's `admin`.
  Group membership syncs the same way (`manage_groups`).
- Logout (File → Log Out in JupyterLab, or the hub's logout link) clears the hub's cookies and ends the hub
  tokens of that browser session (the one in the student's server cookie among them), makes sure the server
  asks the hub again (`PortalLogoutHandler`); then it sends the browser to the portal's OpenID Connect
  end-session endpoint with the user's id_token as `id_token_hint`. That hint is what lets the portal end its session without a
  confirmation page: no other site has it, so no other site can log a student out by a link or an <img>.
  Without a hint (no auth state) the portal asks first.
- The hub's /login sends the browser to the portal itself (`PortalLoginHandler`): JupyterHub's own, with
  auto_login, only redirects to /oauth_login, which then redirects to the portal, one more round trip through
  the proxy and the hub for every student. `next` is checked by JupyterHub's rules, as its /login did.
  With `portal_login_url` set it goes to the portal's login page with the authorization URL as `next`
  (where the authorization endpoint would have sent a browser without a portal session); the portal answers
  the authorization in the login's response, or at once for a browser already logged in to the portal
  (accounts/oauth.py `authorize_at_once`): two round trips less per login.
- A login takes the user's claims from the ID token in the token response, after checking its signature
  (the portal's public key, `id_token_public_key`), issuer, audience and expiry: one request less to the
  portal per login. oauthenticator's own `userdata_from_id_token` would do it without a signature check and
  for refreshes too, where the ID token's claims never change; refreshes (every `auth_refresh_age`, and
  before each spawn) keep asking the userinfo endpoint, which refuses a deactivated student's token. A
  token that does not check out (e.g. a key changed in .env but the hub not restarted) falls back to userinfo.
"""

import contextvars
from urllib.parse import urlencode, urlsplit

import jwt
from jupyterhub.roles import get_default_roles
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler, OAuthLogoutHandler
from traitlets import Dict, Unicode

from hubconfig.templating import PortalUnavailableMixin

# True while `authenticate` turns a fresh token response into a user (not while refreshing one).
_FRESH_TOKEN_RESPONSE = contextvars.ContextVar("cfps_fresh_token_response", default=False)


class PortalLoginHandler(OAuthLoginHandler):
    """/hub/login: to the portal's authorization page at once, or on to `next` when already logged in to the hub
    (as JupyterHub's LoginHandler does, with a fresh login cookie: the server's may have been cleared)."""

    async def get(self):
        user = self.current_user
        if user:
            self.set_login_cookie(user)
            self.redirect(self.get_next_url(user), permanent=False)
            return
        pending = take_pending_logout(self)
        if pending:
            # A logout on its way through the server's own logout that did not come back to /hub/logout (the
            # server stopped meanwhile): finish it, rather than log the browser in again at the portal.
            self.redirect(pending, permanent=False)
            return
        super().get()

    def redirect(self, url, *args, **kwargs):
        # OAuthLoginHandler.get ends in tornado's authorize_redirect, which redirects to the authorize URL.
        authorize_url, login_url = self.authenticator.authorize_url, self.authenticator.portal_login_url
        if login_url and url.startswith(authorize_url + "?"):
            path = urlsplit(authorize_url).path + url[len(authorize_url) :]
            url = f"{login_url}?{urlencode({'next': path})}"
        super().redirect(url, *args, **kwargs)

    def _get_next_url(self):
        # What JupyterHub's /login passed on to /oauth_login: `next` after its own checks, nothing without one.
        return self.get_next_url() if self.get_argument("next", None) else None


def user_role() -> dict:
    """JupyterHub's own "user" role, whole: a role listed without its scopes is written back without them."""
    return next(role for role in get_default_roles() if role["name"] == "user")


# Where the hub's logout continues once the student's server has cleared its own cookie (PortalLogoutHandler).
LOGOUT_NEXT_COOKIE = "cfps-logout-next"
LOGOUT_NEXT_SECONDS = 60


def take_pending_logout(handler) -> str:
    """The end-session URL a logout left for after the server's own logout, once (the cookie is cleared)."""
    value = handler.get_secure_cookie(LOGOUT_NEXT_COOKIE, max_age_days=LOGOUT_NEXT_SECONDS / 86400)
    if value is None:
        return ""
    handler.clear_cookie(LOGOUT_NEXT_COOKIE, path=handler.hub.base_url)
    return value.decode("utf-8", "replace")


class PortalLogoutHandler(OAuthLogoutHandler):
    """/hub/logout: clears the hub's cookies and ends the tokens of this browser session (JupyterHub's own), then
    makes sure the user's server stops believing its own cookie, then ends the portal's session.

    The server caches the hub's answer about its login cookie's token for five minutes, keyed by the session id
    cookie. Where that cookie reaches the server (a server on the hub's host, or on `<name>.<hub domain>` with a
    domain that has a dot: JupyterHub sets it on the hub's domain), clearing it here makes the server ask the
    hub again at once, and the hub knows the token no more. A top-level name (the embedded default `localhost`)
    shares no cookie with `<name>.localhost`: there the browser goes by the server's own logout, which clears
    its cookie and comes back here, and only then on to the portal (`LOGOUT_NEXT_COOKIE`, signed, host-only,
    a minute). Either way the next person at a shared PC finds no way into this student's JupyterLab."""

    _end_session_url = ""
    _server_logout = ""

    async def handle_logout(self):
        await super().handle_logout()
        user = self.current_user  # still the user who is logging out (cleared only after this)
        pending = take_pending_logout(self)
        if user is None and pending:
            self._end_session_url = pending  # back from the server's own logout
            return
        authenticator = self.authenticator
        if not authenticator.logout_redirect_url:
            return
        params = {"client_id": authenticator.client_id}
        if authenticator.post_logout_redirect_url:
            params["post_logout_redirect_uri"] = authenticator.post_logout_redirect_url
        if user is not None:
            auth_state = await user.get_auth_state() or {}
            if auth_state.get("id_token"):
                params["id_token_hint"] = auth_state["id_token"]
            if user.domain == self.domain == self.request.host_name:
                # A server on the hub's own host (USER_SUBDOMAINS=false): its login cookie lives here, under the
                # server's path; cleared at once rather than left to the cache (class docstring).
                spawner = user.spawners.get("")
                if spawner is not None and spawner.oauth_client_id:
                    self.clear_cookie(spawner.oauth_client_id, path=user.base_url)
        self._end_session_url = f"{authenticator.logout_redirect_url}?{urlencode(params)}"
        self._server_logout = self._server_logout_url(user)
        if self._server_logout:
            self._set_cookie(
                LOGOUT_NEXT_COOKIE,
                self._end_session_url,
                encrypted=True,
                path=self.hub.base_url,
                max_age=LOGOUT_NEXT_SECONDS,
            )

    def _server_logout_url(self, user) -> str:
        """The running server's own logout, when the session id cookie cannot reach its host (class docstring)."""
        if user is None or "." in self.domain or user.domain == self.domain:
            return ""
        spawner = user.spawners.get("")
        if spawner is None or not spawner.ready:
            return ""
        return user.host + url_path_join(user.base_url, "logout")

    async def render_logout_page(self):
        if self._server_logout:
            # Not a redirect: the portal's logout is a form post that ends here, and browsers hold a form's
            # redirects to the portal's form-action (itself and the hub), never a student's host. A page that
            # moves on by itself starts a navigation of its own.
            self.set_header("Refresh", f"0; url={self._server_logout}")
            self.set_header("Cache-Control", "no-store")
            self.finish()
            return
        if self._end_session_url:
            self.redirect(self._end_session_url)
            return
        await super().render_logout_page()


class PortalOAuthenticator(PortalUnavailableMixin, GenericOAuthenticator):
    """GenericOAuthenticator plus the portal's staff claim and logout through the portal (module docstring)."""

    staff_claim = Unicode("is_staff", config=True, help="Userinfo claim that marks portal staff.")
    staff_role = Dict(
        config=True,
        help="The hub role (name, description, scopes) that staff hold while the claim says so; needs manage_roles.",
    )
    post_logout_redirect_url = Unicode(
        "", config=True, help="Where the portal sends the browser after ending its session (registered there)."
    )
    id_token_public_key = Unicode(
        "",
        config=True,
        help="PEM public key of the portal's ID tokens; logins then read their claims (module docstring).",
    )
    id_token_issuer = Unicode("", config=True, help="The `iss` the portal's ID tokens carry.")
    portal_login_url = Unicode(
        "", config=True, help="The portal's login page; /login sends browsers there with the authorization as next."
    )
    logout_handler = PortalLogoutHandler

    def get_handlers(self, app):
        # The hub puts its authenticator's handlers before its own, so this /login replaces JupyterHub's.
        return [(r"/login", PortalLoginHandler), *super().get_handlers(app)]

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        # JupyterHub's admin is never given (hubconfig/config.py says why); an explicit False also takes it
        # from an account that had it. The roles listed are exactly the user's: "user" for everyone.
        auth_model["admin"] = False
        auth_model["roles"] = self.roles_for(bool(user_info.get(self.staff_claim)))
        return auth_model

    def roles_for(self, staff: bool) -> list[dict]:
        """The roles a login gives: "user" for everyone, the staff role for staff when it holds any scope. Users
        made before their first login get the same (hubconfig/users.py)."""
        staff = staff and bool(self.staff_role.get("scopes"))
        return [user_role(), *([dict(self.staff_role)] if staff else [])]

    async def load_managed_roles(self):
        # Defined at every start, so a change of its scopes (or none, on a shared origin) holds at once for
        # everyone who has it, before their next refresh.
        return [dict(self.staff_role)] if self.staff_role else []

    async def authenticate(self, handler, data=None, **kwargs):
        fresh = _FRESH_TOKEN_RESPONSE.set(True)
        try:
            return await super().authenticate(handler, data, **kwargs)
        finally:
            _FRESH_TOKEN_RESPONSE.reset(fresh)

    async def token_to_user(self, token_info):
        id_token = token_info.get("id_token")
        if _FRESH_TOKEN_RESPONSE.get() and self.id_token_public_key and id_token:
            try:
                return jwt.decode(
                    id_token,
                    self.id_token_public_key,
                    algorithms=["RS256"],
                    audience=self.client_id,
                    issuer=self.id_token_issuer or None,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.PyJWTError as exc:
                self.log.warning("The portal's ID token does not check out (%s); asking its userinfo endpoint", exc)
        return await super().token_to_user(token_info)
