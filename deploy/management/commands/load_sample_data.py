"""Load the SYNTHETIC CFPS-shaped sample (deploy/sample_data.py) into the dataset database.

Why: the real CFPS files are confidential, yet every notebook, test and fresh install needs data shaped
like them. Where it goes:
- DATASET_DATABASE_URL set (MariaDB/MySQL): into that URL's database, through DATASET_ADMIN_URL (the
  read-only account cannot write); the database is created if missing.
- the embedded default: into the SQLite file in the local data folder (<data>/sample/cfps_sample.sqlite3),
  which notebooks open read-only; `--sqlite PATH` writes that file elsewhere (e.g. for an image or a volume).

Idempotent: a re-load replaces the sample tables with the same rows (the generator is seeded; the checksum
printed at the end is the same every time). It refuses to replace tables it did not load itself (real data
must never be overwritten by the sample) unless `--force`.
"""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import dataset
from deploy import sample_data as sd


class Command(BaseCommand):
    help = "Load the deterministic SYNTHETIC CFPS sample into the dataset database (replaces earlier loads)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say where the sample would go; write nothing.")
        parser.add_argument("--sqlite", metavar="PATH", help="Write the SQLite sample to PATH, whatever .env says.")
        parser.add_argument(
            "--force", action="store_true", help="Replace same-named tables even if they are not the sample."
        )

    def handle(self, *args, dry_run=False, sqlite=None, force=False, **options):
        started = time.monotonic()
        tables, digest = sd.build()
        data_tables = [t for t in tables if not t.name.startswith("cfps_")]
        config = settings.DATASET
        if sqlite or config.embedded:
            path = Path(sqlite or settings.DATASET_SAMPLE_PATH).resolve()
            target = f"SQLite file {path}"
            if not dry_run:
                sd.write_sqlite(path, tables)
        else:
            if config.admin is None:
                raise CommandError(
                    "DATASET_ADMIN_URL is empty: loading into MariaDB/MySQL needs an account that may create tables"
                )
            target = f"database {config.read_only.database} at {config.admin.host}:{config.admin.port}"
            if not dry_run:
                self.load_mysql(config, tables, force)
        verb = "would load" if dry_run else "loaded"
        if options["verbosity"] >= 1:
            for table in data_tables:
                self.stdout.write(f"  {table.name}: {len(table.rows)} rows ({table.label})")
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} the SYNTHETIC sample ({len(data_tables)} tables, checksum {digest[:16]}) into {target}"
                + ("" if dry_run else f" in {time.monotonic() - started:.1f}s")
            )
        )

    def load_mysql(self, config, tables, force):
        admin, name = config.admin, config.read_only.database
        try:
            with dataset.admin_session(admin) as conn:
                self.write_mysql(conn, name, tables, force)
        except dataset.DatasetError as exc:
            raise CommandError(str(exc)) from None

    def write_mysql(self, conn, name, tables, force):
        cursor = conn.cursor()
        cursor.execute(dataset.create_database_statement(name))
        cursor.execute("USE `" + name.replace("`", "``") + "`")
        clash = sorted(sd.existing_tables_mysql(cursor, name) & {t.name for t in tables})
        if clash and not force and not sd.is_synthetic_mysql(cursor, name):
            raise CommandError(
                f"database {name} already has tables {', '.join(clash)} that load_sample_data did not "
                f"load (real data?); refusing to replace them: use another database, or --force"
            )
        conn.autocommit(False)
        sd.write_mysql(conn, tables)
