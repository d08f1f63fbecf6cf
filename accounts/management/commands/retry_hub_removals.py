"""Carry out the calls to the hub it has not confirmed yet (accounts.hub, PendingHubCall): hub-user removals,
hub users made before their first login, servers to start at login.

Why: deactivating, deleting or renaming an account, or changing its password, removes the person's hub user
(server, hub tokens). When the hub was down at that moment, the removal waits in the database; the portal
retries it on its next requests, and this command does it at once: run.sh runs it when the hub answers, an
operator after maintenance. The same holds for the hub users the portal makes before a first login (an account
made or regrouped while the hub was down). Idempotent: a hub user already gone counts as removed, one made twice
is updated. Exits non-zero while a call is still refused or the hub is unreachable.

`--inactive` first queues every inactive account: an account deactivated without `save()` (a bulk
`QuerySet.update()`, SQL) fired no signal, and its hub tokens would otherwise live on.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import hub
from accounts.models import PendingHubCall

VERBS = {"remove": "remove hub user", "sync": "make or update hub user", "start": "start the server of"}


class Command(BaseCommand):
    help = "Make the calls to the hub it has not confirmed yet: remove, make or update hub users, start servers."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List the pending removals; change nothing.")
        parser.add_argument(
            "--inactive", action="store_true", help="Also remove the hub user of every inactive account."
        )

    def handle(self, *args, dry_run=False, inactive=False, **options):
        verbose = options["verbosity"] >= 1
        listed = 0
        if inactive:
            removals = PendingHubCall.objects.filter(kind=PendingHubCall.Kind.REMOVE)
            queued = set(removals.values_list("username", flat=True))
            for username in get_user_model().objects.filter(is_active=False).values_list("username", flat=True):
                if username in queued:
                    continue
                if dry_run:
                    self.stdout.write(f"would remove hub user {username} (inactive account)")
                    listed += 1
                else:
                    PendingHubCall.objects.create(username=username, kind=PendingHubCall.Kind.REMOVE, reason="inactive")
        pending = list(PendingHubCall.objects.all())
        if not pending:
            if verbose and not listed:
                self.stdout.write("No pending hub calls.")
            return
        if dry_run:
            for row in pending:
                error = f", last error: {row.last_error}" if row.last_error else ""
                self.stdout.write(
                    f"would {VERBS[row.kind]} {row.username} ({row.reason}, {row.attempts} attempts{error})"
                )
            return
        done, failed = hub.process_pending(force=True)
        for name in done:
            if verbose:
                self.stdout.write(self.style.SUCCESS(f"done: hub user {name}"))
        for name, error in failed:
            self.stderr.write(f"hub user {name}: not done yet: {error}")
        if failed:
            raise CommandError(f"{len(failed)} hub call(s) still pending; the portal keeps retrying them")
