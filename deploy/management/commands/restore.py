"""Put a `backup` archive back: the databases, .env and secrets, the OIDC key, homes and volumes.

Why: a server dies or a term must be replayed on new hardware. On a fresh clone (after `./run.sh --prepare`,
which makes the database's tables and the bootstrap admin) with the hub and the portal stopped:

    sudo .venv/bin/python manage.py restore /srv/cfps-backups/cfps-backup-20270110T020000Z.tar

Every checksum is verified before anything changes, and so is that the archive holds only what `backup`
writes (no paths, links or devices; volumes only under var/ or DATA_ROOT); the SQL dump is loaded with the
client's --sandbox, so it cannot run shell commands as root. A system that already holds work (accounts besides the
bootstrap admin, groups, hub users, homes, the archive's volumes) is refused unless --force, which replaces
it. --dry-run verifies the archive and says what it would replace. Afterwards start the portal and the hub:
they read the restored .env.
"""

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from accounts import roles
from accounts.models import User
from deploy import backup
from portal.config import load
from portal.config.env import env_path, var_dir


def portal_db_content() -> list[str]:
    """What the current portal database holds besides what `./run.sh --prepare` puts there."""
    try:
        users = User.objects.exclude(username=settings.ADMIN_USERNAME).count()
        groups = roles.class_groups().count()  # bootstrap makes the staff roles' groups on every system
    except DatabaseError:
        return []  # no tables yet: nothing to lose
    found = []
    if users:
        found.append(f"the portal database has {users} account(s) besides {settings.ADMIN_USERNAME}")
    if groups:
        found.append(f"the portal database has {groups} group(s)")
    return found


def running() -> list[str]:
    """The portal and the hub must be stopped: a restore replaces their databases under their feet."""
    import socket

    found = []
    for name, port in (("portal", settings.TOPOLOGY.portal_port), ("hub", settings.TOPOLOGY.hub_port)):
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                found.append(f"the {name} answers on port {port}")
    return found


class Command(BaseCommand):
    help = "Restore a backup archive (checksums first; refuses a system with work in it unless --force)."

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="The .tar file `backup` wrote.")
        parser.add_argument("--force", action="store_true", help="Replace what the system holds now.")
        parser.add_argument("--dry-run", action="store_true", help="Verify the archive and say what would change.")

    def handle(self, *args, archive, force=False, dry_run=False, **options):
        say = self.stdout.write if options["verbosity"] >= 1 else (lambda message: None)
        target = backup.Target(
            var_dir=var_dir().resolve(),
            database=settings.DATABASES["default"],
            env_file=env_path().resolve(),
            oidc_key_file=load().secrets.oidc_key_file,
            image=settings.CONTAINERS.image,
            data_root=Path(settings.CONTAINERS.data_root).resolve(),
            course_root=Path(settings.COURSE.root).resolve(),
        )
        try:
            with backup.Archive(archive) as opened:
                opened.verify(say)  # only what backup writes, intact (deploy/backup.py: the archive is not trusted)
                backup.check_volumes(opened, target)
                engine = opened.of_kind("portal-db")[0]["engine"]
                if engine != backup.vendor(target.database):
                    raise CommandError(
                        f"the archive holds a {engine} portal database but DATABASE_URL names "
                        f"{backup.vendor(target.database)}: restore into the same kind of database"
                    )
                found = portal_db_content() + backup.occupied(opened, target)
                if found and not force:
                    raise CommandError(
                        f"refusing to overwrite a system with work in it ({'; '.join(found)}); "
                        "use --force to replace it"
                    )
                if up := running():
                    raise CommandError(f"{'; '.join(up)}: stop cfps-portal and cfps-hub (or ./run.sh) first")
                if dry_run:
                    for part in opened.parts:
                        say(f"would restore {part['member']} ({backup.human_size(part['size'])})")
                    if found:
                        say(f"would replace: {'; '.join(found)}")
                    return
                connections.close_all()  # SQLite: the restore replaces the file's pages under Django's feet
                backup.restore(opened, target, say, replace=force)
                # A newer checkout than the archive's may have migrations the restored database lacks.
                call_command("migrate", interactive=False, verbosity=0)
                say("database schema: up to date with this checkout")
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Restored {archive}: start the portal and the hub again (they read the restored .env).")
        )
