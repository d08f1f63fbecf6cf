"""Write one owner-only archive with everything a term's work lives in (rules: deploy/backup.py).

Why: accounts, invite history, groups, the hub's state and every student's home live on one server. This
saves them while the system runs, students included, into `var/backups/cfps-backup-<UTC time>.tar` (or
--output), with a manifest of checksums that `restore` verifies. Copy the archive off the machine afterwards
(docs/operator/backup.md). Each run writes a new archive; nothing else changes, except that --keep N
then deletes all but the newest N archives in that folder (the nightly timer keeps 7).

    sudo .venv/bin/python manage.py backup --output /srv/cfps-backups
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from deploy import backup
from portal.config import containers, load
from portal.config.env import env_path, var_dir


def sources(with_homes: bool = True) -> backup.Sources:
    """What to save, from the current configuration."""
    config = load()
    # Named as DockerSpawner names them (`student-1` is jupyterhub-user-student-2d1).
    names = [containers.user_volume(name) for name in User.objects.values_list("username", flat=True)]
    names += [containers.group_volume(name) for name in Group.objects.values_list("name", flat=True)]
    names.append(config.containers.team_volume)
    return backup.Sources(
        var_dir=var_dir().resolve(),
        database=settings.DATABASES["default"],
        env_file=env_path().resolve(),
        oidc_key_file=config.secrets.oidc_key_file,
        image=config.containers.image,
        volumes=list(dict.fromkeys(names)),
        docker_required=config.hub.spawner in {"docker", "swarm"} or config.prod,
        with_homes=with_homes,
        course_root=Path(settings.COURSE.root).resolve(),
    )


class Command(BaseCommand):
    help = "Write one owner-only archive of the databases, .env and secrets, and the users' homes."

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", type=Path, help="Folder to write the archive to (default: var/backups/, mode 0700)."
        )
        parser.add_argument(
            "--without-homes",
            action="store_true",
            help="Leave out the homes and team folders (databases and secrets only).",
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=0,
            help="Then delete all but the newest KEEP archives in that folder (default: keep every one).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List what would be saved; write nothing.")

    def handle(self, *args, output=None, without_homes=False, keep=0, dry_run=False, **options):
        say = self.stdout.write if options["verbosity"] >= 1 else (lambda message: None)
        output = (output or var_dir() / "backups").resolve()
        if dry_run:
            try:
                lines = backup.plan(sources(with_homes=not without_homes))
            except backup.BackupError as exc:
                raise CommandError(str(exc)) from None
            for line in lines:
                self.stdout.write(f"would save {line}")
            for old in backup.prune(output, keep, dry_run=True) if output.is_dir() else []:
                self.stdout.write(f"would delete the older archive {old.name} (--keep {keep})")
            return
        try:
            path = backup.backup(sources(with_homes=not without_homes), output, say)
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write the backup into {output}: {exc.strerror or exc}") from None
        size = backup.human_size(path.stat().st_size)
        for old in backup.prune(output, keep):
            say(f"deleted the older archive {old.name} (--keep {keep})")
        self.stdout.write(self.style.SUCCESS(f"Backup written: {path} ({size})"))
