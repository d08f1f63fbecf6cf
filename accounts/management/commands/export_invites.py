"""Export invite codes as CSV, to print, mail-merge or hand to a colleague.

Why: codes made in the admin or by `create_invite --count 30` must leave the system somehow. Read-only.
The CSV goes to stdout (UTF-8) or, with --output, to a file in UTF-8 with a BOM, which Excel on Chinese
Windows needs to show group names and notes correctly. The rows are the admin's "Export CSV" ones
(accounts.exports), with this command's English header and status words.

    python manage.py export_invites --group class-a --usable --output codes.csv
"""

import csv
from pathlib import Path

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts import exports
from accounts.models import InviteCode

COLUMNS = exports.INVITE_COLUMNS


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
        rows = exports.invite_rows(invites)
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
        writer.writerows([exports.cell(value) for value in row] for row in rows)
