"""Run the course worker: hand out material and assignments, collect hand-ins, return feedback (course/worker.py).

Why: the portal never touches students' homes (in production it has no Docker socket); this process does,
for the jobs staff and students queue. run.sh starts it next to the portal and the hub, systemd as
cfps-worker. Safe to run again or to kill at any moment: what it was doing is done again at its next start.

    .venv/bin/python manage.py course_worker
    .venv/bin/python manage.py course_worker --until-idle   # do what is due now, then exit (tests, cron)
    .venv/bin/python manage.py course_worker --dry-run      # say where homes are and how they are reached
"""

import logging

from django.core.management.base import BaseCommand, CommandError

from course.worker import CourseWorker, install_signal_handlers
from portal.config import load
from portal.config.env import EnvError


class Command(BaseCommand):
    help = "Run the course worker (hand-outs, hand-ins, feedback): the only process that writes students' homes."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between looks for due work (1).")
        parser.add_argument("--until-idle", action="store_true", help="Exit once nothing is due now.")
        parser.add_argument("--dry-run", action="store_true", help="Say how homes are reached; do nothing.")

    def handle(self, *args, interval=1.0, until_idle=False, dry_run=False, verbosity=1, **options):
        from userspace.homes import Homes

        try:
            homes = Homes(load())
        except EnvError as exc:
            raise CommandError(str(exc)) from None
        example = homes.home("student")
        how = "directly" if homes.direct(example) else f"through helper containers of {homes.containers.image}"
        if dry_run:
            self.stdout.write(f"SPAWNER={homes.spawner}: a home is {example}, reached {how}")
            return
        logging.getLogger("course").setLevel(logging.WARNING if verbosity == 0 else logging.INFO)
        if verbosity:
            self.stdout.write(f"Course worker: SPAWNER={homes.spawner}, homes like {example}, reached {how}")
        worker = CourseWorker(homes, interval=interval)
        install_signal_handlers(worker)
        worker.run(until_idle=until_idle)
