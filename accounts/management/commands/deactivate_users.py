"""Deactivate (or, with --reactivate, re-activate) accounts by name or by group.

Why: staff do this in the admin; an operator at the end of a term, or a script, needs the same from the
shell. Each account is saved on its own, so the same signals run as in the admin: deactivation revokes the
OAuth tokens, ends the portal sessions and removes the hub user (server and every hub token; the files stay,
see accounts/signals.py). Re-activating restores the login, never an old token. Idempotent: an account
already in the wanted state is left alone and counted as unchanged.

    python manage.py deactivate_users alice bob
    python manage.py deactivate_users --group class-a-2026 --dry-run
    python manage.py deactivate_users --reactivate alice
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import usernames as username_rules


class Command(BaseCommand):
    help = "Deactivate (or --reactivate) the named accounts, or every member of --group."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", help="Accounts to change.")
        parser.add_argument("--group", help="Every member of this portal group.")
        parser.add_argument("--reactivate", action="store_true", help="Re-activate instead of deactivating.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would change; change nothing.")

    def handle(self, *args, usernames=(), group=None, reactivate=False, dry_run=False, **options):
        User = get_user_model()
        names = usernames
        if not names and not group:
            raise CommandError("name at least one account, or --group")
        wanted = {username_rules.normalize(name) for name in names}
        users = list(User.objects.filter(username__in=wanted))
        missing = sorted(wanted - {user.username for user in users})
        if missing:
            raise CommandError(f"no such account: {', '.join(missing)}")
        if group:
            try:
                users += [u for u in Group.objects.get(name=group).user_set.all() if u.username not in wanted]
            except Group.DoesNotExist:
                raise CommandError(f"no such group: {group}") from None
        active = bool(reactivate)
        verb = "re-activate" if reactivate else "deactivate"
        changed = 0
        for user in sorted(users, key=lambda u: u.username):
            if user.is_active == active:
                continue
            changed += 1
            if dry_run:
                self.stdout.write(f"would {verb} {user.username}")
                continue
            with transaction.atomic():
                user.is_active = active
                user.save(update_fields=["is_active"])  # one save per account: the signals run
            if options["verbosity"] >= 1:
                self.stdout.write(f"{verb}d {user.username}")
        done = "would change" if dry_run else "changed"
        self.stdout.write(self.style.SUCCESS(f"{changed} {done}, {len(users) - changed} unchanged."))
