"""Bring a fresh or existing installation to the state `.env` describes. Safe to run any number of times.

Why: `./run.sh` and deploy scripts call this after `migrate` instead of asking the operator to click
through the admin. It creates the staff account `ADMIN_USERNAME` (password from `ADMIN_PASSWORD`, or
generated and printed once), every invite code in `INVITE_CODES` (`;`-separated, unlimited uses), the two
staff roles 教师 and 助教 with the permissions `accounts/roles.py` lists (set again on every run, so a new
app's permissions join them), and the hub's OAuth client (`ensure_hub_client`), and takes group and other
permissions off what var/ holds (portal/config/filemodes.py: databases, logs, secrets, homes are owner-only).
It never changes an existing password or an existing code's settings, never takes a permission from a
person (only from the two role groups), and never makes an existing account that is not staff a superuser (a
student who signed up with the name first is refused, in one line).
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import roles, usernames
from accounts.models import InviteCode, normalize_code, record_invites_made
from portal.commands import SayMixin


class Command(SayMixin, BaseCommand):
    help = "Create the admin account and the invite codes listed in .env (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would change; change nothing.")
        parser.add_argument(
            "--update-urls", action="store_true", help="Passed on to ensure_hub_client (run.sh passes it)."
        )

    def handle(self, *args, dry_run=False, **options):
        with transaction.atomic():
            self.ensure_admin(dry_run)
            self.ensure_invites(dry_run)
            self.ensure_roles()
            call_command(
                "ensure_hub_client",
                dry_run=dry_run,
                update_urls=options["update_urls"],
                verbosity=options["verbosity"],
                stdout=self.stdout,
            )
            if dry_run:
                transaction.set_rollback(True)
        self.tighten_var(dry_run)

    def tighten_var(self, dry_run):
        from portal.config import filemodes
        from portal.config.env import var_dir

        # Public or shared on purpose: static files, the image build, the containers' shared volumes.
        shared = [settings.STATIC_ROOT, var_dir() / "image-build", settings.CONTAINERS.data_root]
        changed = filemodes.tighten(var_dir(), exclude=shared, dry_run=dry_run)
        if changed:
            verb = "would make" if dry_run else "made"
            self.say(f"{var_dir()}: {verb} {len(changed)} file(s) and folder(s) owner-only.")

    def ensure_admin(self, dry_run):
        User = get_user_model()
        username = User.normalize_username(settings.ADMIN_USERNAME)
        try:
            User._meta.get_field("username").run_validators(username)
        except ValidationError as exc:
            raise CommandError(f"ADMIN_USERNAME={settings.ADMIN_USERNAME!r}: {' '.join(exc.messages)}") from None
        user = User.objects.filter(username=username).first()
        if user is not None:
            if not (user.is_superuser or user.is_staff):
                # A student who took the name first (or after ADMIN_USERNAME changed) must not become superuser
                # at the next start: only an account that was staff already gets its rights restored.
                raise CommandError(
                    f"ADMIN_USERNAME={settings.ADMIN_USERNAME!r} names an existing account that is not staff; "
                    "bootstrap will not make it a superuser. Set another ADMIN_USERNAME in .env."
                )
            if not (user.is_staff and user.is_superuser and user.is_active):
                user.is_staff = user.is_superuser = user.is_active = True
                user.save(update_fields=["is_staff", "is_superuser", "is_active"])
                self.say(f"Admin account {username}: restored staff rights.")
            else:
                self.say(f"Admin account {username}: exists, unchanged.")
            return
        try:
            usernames.check_not_retired(username)
        except ValidationError as exc:
            raise CommandError(
                f"ADMIN_USERNAME={settings.ADMIN_USERNAME!r}: {' '.join(exc.messages)} Set another one in .env."
            ) from None
        password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=settings.ADMIN_EMAIL or "", password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin account {username}: created."))
        if not settings.ADMIN_PASSWORD and not dry_run:
            # Printed once, never stored in clear: the operator can reset it with `manage.py changepassword`.
            self.stdout.write(self.style.WARNING(f"  Generated password (shown only now): {password}"))
            self.stdout.write(
                f"  Change it at /accounts/password_change/ or with: python manage.py changepassword {username}"
            )

    def ensure_roles(self):
        try:
            for line in roles.ensure_roles():
                self.say(line)
        except roles.RoleError as exc:
            raise CommandError(str(exc)) from None

    def ensure_invites(self, dry_run):
        made = []
        for raw in settings.INVITE_CODES:
            code = normalize_code(raw)
            invite, created = InviteCode.objects.get_or_create(
                code=code, defaults={"note": "INVITE_CODES in .env", "max_uses": None}
            )
            if created:
                try:
                    invite.full_clean()
                except ValidationError as exc:
                    raise CommandError(f"INVITE_CODES entry {raw!r}: {' '.join(exc.messages)}") from None
                self.stdout.write(self.style.SUCCESS(f"Invite code {code}: created."))
                made.append(invite)
            else:
                self.say(f"Invite code {code}: exists ({invite.use_count} used), unchanged.")
        record_invites_made(made)
