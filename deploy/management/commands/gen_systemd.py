"""Write the systemd units that run CFPS on a server, from the templates in `deploy/systemd/`.

Why: on a server nothing should depend on a terminal staying open. `cfps-portal` runs gunicorn,
`cfps-hub` runs JupyterHub (which starts its proxy, the idle culler and the users' containers),
`cfps-worker` runs the course worker (hand-outs and hand-ins, the only process that writes students' homes),
`cfps-firewall` loads the container firewall (`gen_firewall`). The services run as SERVICE_USER (never
root), read the same `.env` (EnvironmentFile=), restart on failure and log to the journal; `cfps-backup.timer`
runs `manage.py backup` every night (the newest BACKUP_KEEP archives stay in var/backups/). Paths are this
checkout's, so generate the units from the checkout the server runs. Safe to run again: unchanged units are
left alone.

    sudo .venv/bin/python manage.py gen_systemd --output /etc/systemd/system
"""

import grp
import os
import pwd
import re
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import render
from portal.config.env import BASE_DIR, env_path, var_dir

UNITS = (
    "cfps-portal.service",
    "cfps-hub.service",
    "cfps-worker.service",
    "cfps-firewall.service",
    "cfps-backup.service",
    "cfps-backup.timer",
)
# The nightly backup (cfps-backup.timer): when, and how many archives stay in var/backups/.
BACKUP_TIME = "03:00:00"
BACKUP_KEEP = 7
DEFAULT_RULES = "/etc/cfps/firewall.rules"
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Where systemd's ProtectHome= hides everything; the checkout must stay visible (read-only) if it lives there.
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))


def systemd_env_problems(path: Path) -> list[str]:
    """Lines of `.env` that systemd's EnvironmentFile= would read differently from portal.config.env."""
    problems = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return problems
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            problems.append(f"line {lineno}: drop `export ` (systemd does not know it)")
            continue
        value = line.split("=", 1)[1].strip()
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        if not quoted and " #" in value:
            problems.append(f"line {lineno}: move the comment to its own line (systemd would keep it in the value)")
    return problems


def find_tool(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    return path or f"/usr/sbin/{name}"


class Command(render.GeneratorCommand, BaseCommand):
    help = (
        "Write the systemd units cfps-portal, cfps-hub, cfps-worker, cfps-firewall and the backup's for this checkout."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="Folder to write the units to (default: print them).")
        parser.add_argument("--dry-run", action="store_true", help="Say which units would change; write nothing.")
        parser.add_argument(
            "--firewall-rules",
            default=DEFAULT_RULES,
            help=f"The rules file `gen_firewall --output` wrote (default: {DEFAULT_RULES}).",
        )

    def handle(self, *args, output=None, dry_run=False, firewall_rules=DEFAULT_RULES, **options):
        env_file = env_path().resolve()
        if problems := systemd_env_problems(env_file):
            raise CommandError(f"{env_file} {'; '.join(problems)}")
        context = self.context(env_file, firewall_rules)
        rendered = {name: render.render(f"systemd/{name}", context) for name in UNITS}
        if output is None:
            if dry_run:
                raise CommandError("--dry-run needs --output (without it the units are only printed)")
            for name, text in rendered.items():
                self.stdout.write(f"# ===== {name} =====\n{text}", ending="\n")
            return
        for name, text in rendered.items():
            render.write(self, output / name, text, dry_run=dry_run)
        self.warn_about_accounts(context, env_file)
        if not dry_run:
            self.say(
                "Load them with: systemctl daemon-reload && "
                "systemctl enable --now cfps-firewall cfps-portal cfps-hub cfps-worker cfps-backup.timer"
            )

    def context(self, env_file: Path, firewall_rules: str) -> dict:
        user = settings.SERVICE_USER
        if not _USER.fullmatch(user) or user == "root":
            raise CommandError(f"SERVICE_USER={user!r} must be a plain system user name, and not root")
        base = BASE_DIR.resolve()
        var = var_dir().resolve()
        under_home = any(base.is_relative_to(root) or var.is_relative_to(root) for root in HOME_ROOTS)
        course_root = settings.COURSE.root.resolve()
        return {
            "user": user,
            # COURSE_ROOT outside var/ must stay writable for the worker.
            "course_root": "" if course_root.is_relative_to(var) else render.check_value("COURSE_ROOT", course_root),
            "group": user,
            "docker_group": "docker",
            "base_dir": render.check_value("the checkout's path", base),
            "var_dir": render.check_value("CFPS_VAR_DIR", var),
            "venv_bin": render.check_value("the virtualenv's path", Path(sys.executable).parent),
            "env_file": render.check_value("the .env path", env_file),
            "protect_home": "read-only" if under_home else "yes",
            "iptables": find_tool("iptables"),
            "iptables_restore": find_tool("iptables-restore"),
            "firewall_rules": render.check_value("--firewall-rules", firewall_rules),
            "backup_time": BACKUP_TIME,
            "backup_keep": BACKUP_KEEP,
        }

    def warn_about_accounts(self, context: dict, env_file: Path) -> None:
        """What would stop the units at start: a missing user or group, a .env they cannot read."""
        warn = lambda message: self.stderr.write(self.style.WARNING(f"warning: {message}"))  # noqa: E731
        user = context["user"]
        try:
            pwd.getpwnam(user)
        except KeyError:
            warn(f"there is no user {user} yet: useradd --system --home-dir {context['var_dir']} {user}")
        try:
            grp.getgrnam(context["docker_group"])
        except KeyError:
            warn("there is no docker group yet: the hub needs it for the Docker socket (apt-get install docker.io)")
        try:
            stat = env_file.stat()
            owner, group = pwd.getpwuid(stat.st_uid).pw_name, grp.getgrgid(stat.st_gid).gr_name
        except (OSError, KeyError):
            return
        if not env_file.is_file():  # e.g. /dev/null while testing
            return
        mode = stat.st_mode
        if not (mode & 0o004 or (mode & 0o040 and group == user) or (mode & 0o400 and owner == user)):
            warn(f"{user} cannot read {env_file}: chgrp {user} {env_file} && chmod 640 {env_file}")
        elif mode & 0o004:
            warn(f"{env_file} holds secrets but everyone may read it: chgrp {user} {env_file} && chmod 640 {env_file}")
