"""Export invite codes as CSV, to print, mail-merge or hand to a colleague.

Why: codes made in the admin or by `create_invite --count 30` must leave the system somehow. Read-only.
The CSV goes to stdout (UTF-8) or, with --output, to a file in UTF-8 with a BOM, which Excel on Chinese
Windows needs to show group names and notes correctly.

    python manage.py export_invites --group class-a --usable --output codes.csv
"""

import csv
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone

from accounts.models import InviteCode

COLUMNS = ["code", "status", "uses", "max_uses", "expires_at", "group", "note", "created_at", "signup_url"]


def status(invite) -> str:
    problem = invite.problem()
    return "usable" if problem is None else problem.code


def local(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


class Command(BaseCommand):
    help = "Write invite codes as CSV (code,status,uses,max_uses,expires_at,group,note,created_at,signup_url)."

    def add_arguments(self, parser):
        parser.add_argument("--group", help="Only codes of this group.")
        parser.add_argument("--usable", action="store_true", help="Only codes that can still be used now.")
        parser.add_argument("--output", type=Path, help="Write to this file (UTF-8 with BOM) instead of stdout.")

    def handle(self, *args, group=None, usable=False, output=None, **options):
        invites = InviteCode.objects.select_related("group").order_by("created_at", "code")
        if group:
            team = Group.objects.filter(name=" ".join(group.split())).first()
            if team is None:
                raise CommandError(f"no group named {group!r}")
            invites = invites.filter(group=team)
        if usable:
            invites = invites.usable()
        signup_url = settings.PUBLIC_URL + reverse("signup")
        rows = [
            [
                invite.code,
                status(invite),
                invite.use_count,
                "" if invite.max_uses is None else invite.max_uses,
                local(invite.expires_at),
                invite.group.name if invite.group else "",
                invite.note,
                local(invite.created_at),
                signup_url,
            ]
            for invite in invites
        ]
        if output is None:
            self.write(self.stdout, rows)
            return
        try:
            with open(output, "w", encoding="utf-8-sig", newline="") as out:
                self.write(out, rows)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}") from None
        if options["verbosity"] >= 1:
            self.stderr.write(f"Wrote {len(rows)} invite code(s) to {output}.")

    def write(self, out, rows):
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
