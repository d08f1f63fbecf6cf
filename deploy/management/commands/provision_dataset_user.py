"""Create or update the read-only MariaDB/MySQL account that notebooks query the CFPS dataset with.

Why: students' code runs arbitrary SQL, so the account in DATASET_DATABASE_URL must be able to read the
dataset and do nothing else. This command makes the server match `.env`: the user (default `jupyterhub`) with
the URL's password, for every host pattern in DATASET_USER_HOST, with SELECT on the URL's database (default
`cfps`, created if missing) and no other privilege (extra ones are revoked), and with resource limits so
that students' code cannot starve the server: DATASET_MAX_CONNECTIONS connections at once and
DATASET_MAX_STATEMENT_SECONDS per statement (rules in portal/config/dataset.py). It works through
DATASET_ADMIN_URL, an account allowed to create users and grant.

Idempotent: it reads the current accounts and grants first and changes only what differs (the password only
when it does not match); a second run reports "unchanged". `--dry-run` prints the SQL it would run, with the
password masked, and changes nothing.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import dataset


class Command(BaseCommand):
    help = "Create/update the read-only dataset account of DATASET_DATABASE_URL (SELECT only), idempotently."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print the SQL that would run; change nothing.")

    def handle(self, *args, dry_run=False, **options):

        config = settings.DATASET
        if config.read_only is None:
            raise CommandError(
                "DATASET_DATABASE_URL is empty: the embedded default uses the SQLite sample, which needs no "
                "account; set it to mysql://jupyterhub:PASSWORD@HOST:3306/cfps to use MariaDB/MySQL"
            )
        if config.admin is None:
            raise CommandError("DATASET_ADMIN_URL is empty: set it to an account that may create users and grant")
        account, admin = config.read_only, config.admin
        try:
            with dataset.admin_session(admin) as conn:
                plan = dataset.plan_read_only_account(
                    conn, account, config.user_hosts, admin, config.max_connections, config.max_statement_seconds
                )
                if dry_run:
                    for _, shown in plan.statements:
                        self.stdout.write(shown + ";")
                else:
                    dataset.apply_plan(conn, plan, admin)
        except dataset.DatasetError as exc:
            raise CommandError(str(exc)) from None
        self.report(plan, account, dry_run, options["verbosity"])

    def report(self, plan, account, dry_run, verbosity):
        suffix = " (dry run: not done)" if dry_run else ""
        for warning in plan.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        if plan.database_statements:
            self.stdout.write(self.style.SUCCESS(f"database {account.database}: created{suffix}"))
        for state in plan.accounts:
            who = f"{account.user}@{state.host}"
            if state.changes:
                self.stdout.write(self.style.SUCCESS(f"{who}: {', '.join(state.changes)}{suffix}"))
            elif verbosity >= 1:
                self.stdout.write(f"{who}: unchanged (SELECT on {account.database} only; {plan.limits})")
        for host in plan.stray_hosts:
            self.stderr.write(
                self.style.WARNING(
                    f"warning: {account.user}@{host} exists too but is not in DATASET_USER_HOST; "
                    f"if nobody needs it: DROP USER '{account.user}'@'{host}';"
                )
            )
        if dry_run:
            self.stdout.write("dry run: nothing was changed")
