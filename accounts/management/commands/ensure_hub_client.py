"""Register JupyterHub as an OAuth client of the portal, exactly as `.env` describes. Safe to re-run.

Why: the client id, secret and callback URL are derived from `.env` (see portal/config/topology.py), which the
hub reads too; this command makes the portal's Application match, so nothing is typed twice. The hub's
client is trusted: it skips the consent screen. `bootstrap` runs this.

An existing client whose callback URL differs from the one this process derives is NOT re-registered
unless `--update-urls` says so (`run.sh` does, since it starts the hub with exactly these values): a port or
URL override given to one shell only (`PORT=8123 ./run.sh`, then a plain `manage.py bootstrap` elsewhere)
would otherwise silently break every student's login.
"""

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.models import get_application_model

from portal.commands import SayMixin
from portal.config import topology as topology_module

Application = get_application_model()


class Command(SayMixin, BaseCommand):
    help = "Create or update the OAuth client (Application) that JupyterHub logs in with."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would change; change nothing.")
        parser.add_argument(
            "--update-urls",
            action="store_true",
            help="Re-register the callback and logout URLs when they changed (run.sh passes this).",
        )

    def handle(self, *args, dry_run=False, update_urls=False, **options):
        topology = settings.TOPOLOGY
        wanted = {
            "name": "JupyterHub",
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": topology.hub_callback_url,
            "post_logout_redirect_uris": topology.post_logout_url,
            "skip_authorization": True,
            "algorithm": Application.RS256_ALGORITHM,
        }
        app = Application.objects.filter(client_id=settings.HUB_CLIENT_ID).first()
        created = app is None
        if created:
            app = Application(client_id=settings.HUB_CLIENT_ID)
        changes = [field for field, value in wanted.items() if getattr(app, field) != value]
        if not created and "redirect_uris" in changes and not update_urls:
            raise CommandError(
                f"the hub is registered with the callback {app.redirect_uris} but this shell's settings give "
                f"{topology.hub_callback_url}; use the same {'/'.join(topology_module.KEYS)} as the running "
                "system, or pass --update-urls to re-register it"
            )
        secret_ok = not created and check_password(settings.HUB_CLIENT_SECRET, app.client_secret)
        if not secret_ok:
            changes.append("client_secret")
        if not changes:
            self.say(f"Hub OAuth client {app.client_id}: up to date ({topology.hub_callback_url}).")
            return
        for field, value in wanted.items():
            setattr(app, field, value)
        if "client_secret" in changes:
            app.client_secret = settings.HUB_CLIENT_SECRET  # hashed on save (CLIENT_SECRET_HASHER)
            app.hash_client_secret = True
        try:
            app.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        verb = "would be " if dry_run else ""
        if not dry_run:
            app.save()
        action = "created" if created else f"updated ({', '.join(changes)})"
        self.stdout.write(self.style.SUCCESS(f"Hub OAuth client {app.client_id}: {verb}{action}."))
