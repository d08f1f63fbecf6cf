"""Log in to the hub through the portal (OAuth2 + OIDC userinfo), with portal staff as hub admins."""

from oauthenticator.generic import GenericOAuthenticator
from traitlets import Unicode

from hubconfig.templating import PortalUnavailableMixin


class PortalOAuthenticator(PortalUnavailableMixin, GenericOAuthenticator):
    """GenericOAuthenticator plus one rule: the portal's `is_staff` claim decides hub admin rights.

    Set on every login and every auth refresh, so granting or removing staff status in the Django admin
    reaches the hub within `auth_refresh_age`. Group membership syncs the same way (`manage_groups`).
    """

    staff_claim = Unicode("is_staff", config=True, help="Userinfo claim that marks a hub admin.")

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        user_info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        auth_model["admin"] = auth_model["name"] in self.admin_users or bool(user_info.get(self.staff_claim))
        return auth_model
