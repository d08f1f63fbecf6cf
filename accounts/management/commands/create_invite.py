"""Create one invite code from the command line.

Why: an operator setting up a class should not need the admin for the first code. The code is printed
alone on the last line so scripts can capture it: `CODE=$(python manage.py create_invite | tail -n1)`.
"""

import datetime

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import InviteCode, normalize_code


def parse_date(value: str) -> datetime.datetime:
    """YYYY-MM-DD means usable through the end of that day, in the portal's time zone."""
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires must be a date like 2026-12-31, not {value!r}") from None
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min)
    return timezone.make_aware(end)


class Command(BaseCommand):
    help = "Create one invite code and print it alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--code", help="The code to use (default: a random 10-character code).")
        parser.add_argument("--max-uses", type=int, help="How many accounts may use it (default: unlimited).")
        parser.add_argument("--expires", help="Last day it can be used, YYYY-MM-DD (default: never expires).")
        parser.add_argument("--group", help="Name of a group that new users join; created if missing.")
        parser.add_argument("--note", default="", help="A note shown to staff in the admin.")

    def handle(self, *args, code=None, max_uses=None, expires=None, group=None, note="", **options):
        if max_uses is not None and max_uses < 1:
            raise CommandError("--max-uses must be 1 or more (leave it out for unlimited)")
        expires_at = parse_date(expires) if expires else None
        if expires_at is not None and expires_at <= timezone.now():
            raise CommandError(f"--expires {expires} is in the past")
        invite = InviteCode(max_uses=max_uses, expires_at=expires_at, note=note)
        if code is not None:
            invite.code = normalize_code(code)
            if InviteCode.objects.filter(code=invite.code).exists():
                raise CommandError(f"invite code {invite.code} already exists")
        if group:
            invite.group, created = Group.objects.get_or_create(name=group.strip())
            if created and options["verbosity"] >= 1:
                self.stdout.write(f"Created group {invite.group.name}")
        try:
            invite.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        invite.save()
        if options["verbosity"] >= 1:
            limit = "unlimited uses" if max_uses is None else f"{max_uses} use(s)"
            until = f"until {expires}" if expires else "no expiry"
            self.stdout.write(self.style.SUCCESS(f"Created invite code ({limit}, {until})."))
        self.stdout.write(invite.code)
