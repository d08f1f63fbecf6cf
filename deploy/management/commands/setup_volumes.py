"""Create the Docker volumes every notebook container mounts, and fill the shared data folder.

Why: DockerSpawner mounts two shared volumes into each user's container (see portal/config/containers.py): the
read-only data volume (DOCKER_DATA_VOLUME, ~/data) and the read-write team volume (DOCKER_TEAM_VOLUME,
~/team-shared). Both are `local` volumes bound onto folders under DATA_ROOT, so the files are plain files
on the host. This creates them, gives the team folder to the notebook user (uid 1000) and copies the example
notebooks, the notebook helpers and the kernels' start-up files into the data folder
(userspace.datafolder.sync_data_folder), and, when the dataset is the embedded sample (DATASET_DATABASE_URL
empty), writes the synthetic sample into its sample/ (load_sample_data --sqlite). It also creates the users'
network (DOCKER_NETWORK, default cfps-users: a bridge with inter-container traffic off, userspace/isolation.py)
and says whether the engine can enforce USER_DISK_QUOTA. Idempotent: run it again after pulling new
notebooks. A volume that already exists but points elsewhere is left alone and reported; so is a network
that lets containers reach each other.
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from deploy.imagebuild import BuildError, docker_client
from portal.commands import SayMixin
from portal.config import dataset
from userspace import datafolder, isolation, volumes


class Command(SayMixin, BaseCommand):
    help = "Create the shared Docker volumes (data read-only, team-shared read-write) and fill the data folder."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would be done; change nothing.")

    def handle(self, *args, dry_run=False, **options):
        config = settings.CONTAINERS
        try:
            client = docker_client(timeout=60)
        except BuildError as exc:
            raise CommandError(str(exc)) from None
        try:
            for name, folder in ((config.data_volume, config.data_dir), (config.team_volume, config.team_dir)):
                self.say(volumes.ensure_bind_volume(client, name, folder, dry_run=dry_run))
            if volumes.owned_by_notebook_user(config.team_dir):
                self.say(f"{config.team_dir}: belongs to the notebook user, unchanged")
            elif dry_run:
                self.say(f"would give {config.team_dir} to the notebook user (uid 1000, mode 2775)")
            else:
                volumes.give_to_notebook_user(client, config.image, config.team_volume)
                self.say(f"{config.team_dir}: given to the notebook user (uid 1000, mode 2775)")
        except volumes.VolumeError as exc:
            raise CommandError(str(exc)) from None
        self.network_and_quota(client, config, dry_run)
        for line in datafolder.sync_data_folder(config.data_dir, dry_run=dry_run):
            self.say(("would copy " if dry_run else "copied ") + line)
        if settings.DATASET.embedded:
            sample = dataset.sample_path(config.data_dir)
            if dry_run:
                self.say(f"would write the synthetic sample to {sample}")
            else:
                call_command("load_sample_data", sqlite=str(sample), verbosity=0, stdout=self.stdout)
        if not dry_run:
            self.stdout.write(
                self.style.SUCCESS(f"Volumes ready: {config.data_volume} (read-only), {config.team_volume}.")
            )

    def network_and_quota(self, client, config, dry_run):
        try:
            self.say(isolation.ensure_users_network(client, config.network, dry_run=dry_run))
        except isolation.NetworkError as exc:
            # Left to the operator (running servers may use it); the hub's log repeats this at every start.
            self.stderr.write(self.style.WARNING(f"warning: {exc}"))
        if not config.disk_quota:
            return
        if dry_run:
            self.say(f"would check whether the Docker engine can enforce USER_DISK_QUOTA={config.disk_quota}")
            return
        volume_ok, layer_ok, lines = isolation.quota_report(client, config.image, config.disk_quota)
        for line in lines:
            self.stderr.write(self.style.WARNING(f"warning: {line}"))
        if volume_ok or layer_ok:
            where = " and ".join(
                part for part, ok in (("new home volumes", volume_ok), ("the containers' own files", layer_ok)) if ok
            )
            self.say(f"USER_DISK_QUOTA={config.disk_quota}: enforced on {where}")
