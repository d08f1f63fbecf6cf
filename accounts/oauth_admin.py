"""django-oauth-toolkit's models in the admin: superusers only, under names staff can read.

The hub is the portal's one OAuth client (`ensure_hub_client` registers it) and the tokens are the login's
own bookkeeping: a teacher or TA has nothing to do there, and token rows are not for them to see. So each of
the toolkit's admin pages answers a superuser only (anyone else gets a 403, whatever permissions they hold),
and the app and its models get translatable names: the toolkit gives its models none, so Django would show
"access tokens" in English.

The names are set on the models' options at start-up, not in a migration: `makemigrations` reads a model's
declared Meta (`_meta.original_attrs`), which stays the toolkit's, so no migration of a third-party app is
needed or made.
"""

from django.apps import apps
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from oauth2_provider import models as dot

from accounts.lifecycle_admin import SuperuserOnly

NAMES = {
    dot.get_application_model: (_("OAuth application"), _("OAuth applications")),
    dot.get_access_token_model: (_("access token"), _("access tokens")),
    dot.get_refresh_token_model: (_("refresh token"), _("refresh tokens")),
    dot.get_grant_model: (_("authorization code"), _("authorization codes")),
    dot.get_id_token_model: (_("ID token"), _("ID tokens")),
}


def register() -> None:
    """Re-register the toolkit's admin classes as superuser-only ones, and name its app and models."""
    apps.get_app_config("oauth2_provider").verbose_name = _("OAuth provider (the hub's login)")
    for get_model, (singular, plural) in NAMES.items():
        model = get_model()
        model._meta.verbose_name, model._meta.verbose_name_plural = singular, plural
        if not admin.site.is_registered(model):
            continue
        stock = type(admin.site.get_model_admin(model))
        admin.site.unregister(model)
        admin.site.register(model, type(stock.__name__, (SuperuserOnly, stock), {"__module__": __name__}))
