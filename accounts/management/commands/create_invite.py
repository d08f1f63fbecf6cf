"""Create invite codes from the command line.

Why: an operator setting up a class should not need the admin for the first codes. The codes are printed
alone, one per line, at the end, so scripts can capture them: `CODE=$(python manage.py create_invite | tail -n1)`,
or `python manage.py create_invite --count 30 -v 0 > codes.txt`.

`--group` names an existing group; a typo would otherwise silently make a new, empty team, so a new group
is made only with `--create-group`. A staff role (accounts.roles) is never a code's group.
"""

import datetime

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts import expiry, roles
from accounts.models import InviteCode, generate_code, normalize_code, record_invites_made

MAX_COUNT = 1000


def parse_date(value: str) -> datetime.datetime:
    """YYYY-MM-DD means usable through the end of that day (23:59:59), in the portal's time zone."""
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires must be a date like 2026-12-31, not {value!r}") from None
    return expiry.end_of_day(day)


class Command(BaseCommand):
    help = "Create invite codes (one by default) and print each alone on its own line at the end."

    def add_arguments(self, parser):
        parser.add_argument("--code", help="The code to use (default: a random 10-character code).")
        parser.add_argument("--count", type=int, default=1, help="How many codes to make (default: 1).")
        parser.add_argument("--max-uses", type=int, help="How many accounts may use each (default: unlimited).")
        parser.add_argument("--expires", help="Last day it can be used, YYYY-MM-DD (default: never expires).")
        parser.add_argument("--group", help="Name of an existing group that new users join.")
        parser.add_argument("--create-group", action="store_true", help="Create the --group if it does not exist.")
        parser.add_argument("--note", default="", help="A note shown to staff in the admin.")

    def handle(self, *args, code=None, count=1, max_uses=None, expires=None, group=None, **options):
        if max_uses is not None and max_uses < 1:
            raise CommandError("--max-uses must be 1 or more (leave it out for unlimited)")
        if not 1 <= count <= MAX_COUNT:
            raise CommandError(f"--count must be between 1 and {MAX_COUNT}")
        if code is not None and count > 1:
            raise CommandError("--code makes one code; leave it out with --count")
        expires_at = parse_date(expires) if expires else None
        if expires_at is not None and expires_at <= timezone.now():
            raise CommandError(f"--expires {expires} is in the past")
        with transaction.atomic():
            team = self.find_group(group, options["create_group"], options["verbosity"]) if group else None
            invites = [
                self.make(code, max_uses, expires_at, team, options["note"], first=(i == 0)) for i in range(count)
            ]
            record_invites_made(invites)
        if options["verbosity"] >= 1:
            limit = "unlimited uses" if max_uses is None else f"{max_uses} use(s) each"
            until = f"until {expires}" if expires else "no expiry"
            made = "1 invite code" if count == 1 else f"{count} invite codes"
            self.stdout.write(self.style.SUCCESS(f"Created {made} ({limit}, {until})."))
        for invite in invites:
            self.stdout.write(invite.code)

    def find_group(self, name, create, verbosity):
        name = " ".join(name.split())
        team = Group.objects.filter(name=name).first()
        if team is not None and roles.is_role_group(team):
            raise CommandError(f"{name!r} is a staff role, not a class or team; new users cannot join it by a code")
        if team is None:
            if not create:
                raise CommandError(f"no group named {name!r}; check the spelling, or add --create-group to make it")
            team = Group.objects.create(name=name)
            if verbosity >= 1:
                self.stdout.write(f"Created group {team.name}")
        return team

    def make(self, code, max_uses, expires_at, team, note, first):
        invite = InviteCode(max_uses=max_uses, expires_at=expires_at, group=team, note=note)
        if code is not None and first:
            invite.code = normalize_code(code)
            if InviteCode.objects.filter(code=invite.code).exists():
                raise CommandError(f"invite code {invite.code} already exists")
        else:
            while InviteCode.objects.filter(code=invite.code).exists():
                invite.code = generate_code()
        try:
            invite.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        invite.save()
        return invite
