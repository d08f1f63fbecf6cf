"""Import a class roster (CSV) as accounts and group memberships.

Why: a teacher with 200 students should not create 200 accounts by hand or hand out one invite code per
student. The rules (columns, encodings, when a row is skipped) are in `accounts.roster`; the admin's
"Import roster" page uses the same code. Safe to run twice: the second run changes nothing and says so.

    python manage.py import_roster class.csv --group class-2026 --dry-run
    python manage.py import_roster class.csv --group class-2026 --links links.csv
"""

import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts import roster, setpassword


def write_links(path: Path, users) -> None:
    # UTF-8 with a BOM: Excel on Chinese Windows shows the names garbled without it.
    expires = setpassword.link_expiry().date().isoformat()
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["username", "name", "link", "expires"])
        for user in users:
            writer.writerow([user.username, user.get_full_name(), setpassword.link(user), expires])


class Command(BaseCommand):
    help = "Create accounts and group memberships from a CSV roster (username,name,email,group)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The roster: CSV or tab-separated, UTF-8 or GB18030.")
        parser.add_argument("--group", help="Also add every student in the file to this group (created if missing).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would happen; save nothing.")
        parser.add_argument(
            "--links",
            type=Path,
            metavar="OUT.csv",
            help="Write username,name,link rows: one set-password link (valid "
            f"{setpassword.LINK_DAYS} days) per new account, or imported account not used yet.",
        )

    def handle(self, *args, file, group=None, dry_run=False, links=None, verbosity=1, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            rows = roster.read(data)
        except roster.RosterError as exc:
            raise CommandError(f"{file}: {exc}") from None
        if links is not None and not dry_run and links.resolve() == file.resolve():
            raise CommandError("--links must not overwrite the roster itself")

        try:
            report = roster.import_roster(rows, extra_group=group, dry_run=dry_run)
        except roster.RosterError as exc:
            raise CommandError(f"--group: {exc}") from None

        style = {
            roster.CREATED: self.style.SUCCESS,
            roster.UPDATED: self.style.SUCCESS,
            roster.UNCHANGED: str,
            roster.SKIPPED: self.style.WARNING,
        }
        for row in report.rows:
            if verbosity >= 2 or (verbosity >= 1 and row.status != roster.UNCHANGED):
                detail = f"  {row.message}" if row.message else ""
                line = f"line {row.line:>4}  {row.status:<9}  {row.username or '-'}{detail}"
                self.stdout.write(style[row.status](line))
        if report.groups_created and verbosity >= 1:
            self.stdout.write(f"New groups: {', '.join(report.groups_created)}")
        counts = report.counts
        summary = ", ".join(f"{counts[s]} {s}" for s in roster.STATUSES)
        if dry_run:
            self.stdout.write(f"Dry run, nothing saved. Would be: {summary}.")
        elif not report.changed:
            self.stdout.write(f"Nothing to change: the accounts already match the file ({summary}).")
        else:
            self.stdout.write(self.style.SUCCESS(f"Done: {summary}."))

        if links is not None and not dry_run:
            try:
                write_links(links, report.link_users)
            except OSError as exc:
                raise CommandError(f"cannot write {links}: {exc.strerror}") from None
            setpassword.record_links_issued(report.link_users)
            self.stdout.write(f"Wrote {len(report.link_users)} set-password link(s) to {links}.")
