"""Reset a staff member's second factor (a lost or replaced phone): remove their authenticator and backup codes,
so that their next login asks them to enrol again (accounts/otp.py).

Why: a superuser does this in the admin (账号与邀请 → 身份验证器); when the one who lost the phone is the last
superuser, nobody can log in to the admin to do it, and the operator does it from the shell. Idempotent: an
account without devices is left alone and said so. Sessions verified with the old device are no longer
verified (their next request asks for a code or enrolment).

    python manage.py reset_otp cfps-admin
    python manage.py reset_otp cfps-admin --dry-run
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import otp, usernames


class Command(BaseCommand):
    help = "Remove a staff member's second-factor devices, so they enrol again at their next login (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The account whose devices are removed.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be removed; remove nothing.")

    def handle(self, *args, username, dry_run=False, **options):
        name = usernames.normalize(username)
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"no such account: {name}")
        devices = otp.devices_of(user)
        if not devices:
            self.stdout.write(f"{name} has no second-factor device: nothing to reset.")
            return
        if dry_run:
            self.stdout.write(
                f"would remove {len(devices)} device(s) of {name}: {', '.join(_label(d) for d in devices)}"
            )
            return
        removed = otp.reset(user)
        self.stdout.write(
            self.style.SUCCESS(f"removed {removed} device(s) of {name}: they enrol again at their next login.")
        )


def _label(device) -> str:
    kind = "authenticator" if isinstance(device, otp.TOTPDevice) else "backup codes"
    return kind if device.confirmed else f"{kind} (not confirmed)"
