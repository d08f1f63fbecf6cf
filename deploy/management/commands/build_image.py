"""Build the users' notebook image offline: `python manage.py build_image`.

Why: campus servers often cannot pull from Docker Hub, but reach a Debian mirror and a PyPI index. This
debootstraps Debian from DEBIAN_MIRROR, installs singleuser/image/requirements.txt into a venv (wheels fetched
by this machine's pip, or from PIP_INDEX_URL), and `docker import`s the result as DOCKER_IMAGE (see
deploy/imagebuild.py for the stages). Running it again with nothing changed takes a second: the image
carries a hash of its inputs, and the Debian base system stays cached in var/image-build/.
Needs root (debootstrap, chroot) and a running Docker engine.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy.imagebuild import Builder, BuildError
from portal.commands import SayMixin


class Command(SayMixin, BaseCommand):
    help = "Build the notebook image (DOCKER_IMAGE) from a Debian mirror and a PyPI index, without Docker Hub."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would be built; build nothing.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Rebuild even when an image from the same inputs exists, with a fresh debootstrap (security updates).",
        )

    def handle(self, *args, dry_run=False, force=False, **options):
        verbosity = options["verbosity"]
        config = settings.CONTAINERS

        builder = Builder(
            image=config.image,
            mirror=config.debian_mirror,
            index_url=config.pip_index_url,
            say=self.say,
            verbosity=verbosity,
            force=force,
            dry_run=dry_run,
        )
        try:
            summary = builder.run()
        except BuildError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Notebook image: {summary}"))
