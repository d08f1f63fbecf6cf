"""Delete the entries of the record of who did what that are older than AUDIT_RETENTION_DAYS.

Why: the course worker does this once a day by itself (audit/retention.py); an operator who shortened the
retention, or a site that runs the worker elsewhere, can do it now or from cron. Idempotent: a second run finds
nothing more to delete.

    .venv/bin/python manage.py prune_audit --dry-run
    .venv/bin/python manage.py prune_audit
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from audit import retention


class Command(BaseCommand):
    help = "Delete the record's entries older than AUDIT_RETENTION_DAYS (the course worker does it daily)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say how many would go; delete nothing.")

    def handle(self, *args, dry_run=False, **options):
        days = settings.AUDIT_RETENTION_DAYS
        before = timezone.localtime(retention.cutoff()).strftime("%Y-%m-%d %H:%M")
        try:
            if dry_run:
                count = retention.expired().count()
                self.stdout.write(f"Would delete {count} entries older than {days} days (before {before}).")
                return
            count = retention.prune()
        except DatabaseError as exc:
            raise CommandError(f"the record could not be pruned: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Deleted {count} entries older than {days} days (before {before})."))
