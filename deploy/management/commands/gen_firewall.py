"""Write the iptables rules that keep the users' containers away from this host, from `deploy/firewall/cfps.rules`.

Why: a student's notebook runs arbitrary code in a container on a Docker bridge, and the host listens on
more than it should show them (the portal, the proxy's API, Redis, ssh...). From the bridges
(DOCKER_BRIDGE_INTERFACES) the rules let through only what a user's server needs on the host: the hub's API
(HUB_PORT) and MySQL (the port in DATASET_DATABASE_URL, else 3306), at DOCKER_INTERFACE_IP when it is set;
everything else is rejected. Other machines never reach HUB_PORT, except the swarm's worker nodes
(SWARM_WORKERS, with SPAWNER=swarm: their servers call the hub's API). The rules live in their own chains and load with `iptables-restore --noflush`,
so Docker's and the operator's rules stay; the `cfps-firewall` unit (`gen_systemd`) loads them at boot.
Safe to run again: an unchanged file is left alone.

    sudo .venv/bin/python manage.py gen_firewall --output /etc/cfps/firewall.rules
"""

import ipaddress
import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import render

# An interface name as iptables takes it: up to 15 characters, `+` at the end as a wildcard.
_INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}\+?")


class Command(render.GeneratorCommand, BaseCommand):
    help = "Write iptables rules: containers reach only the hub API and MySQL on this host."

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="File to write (default: print to stdout).")
        parser.add_argument("--dry-run", action="store_true", help="Say whether --output would change; write nothing.")

    def handle(self, *args, output=None, dry_run=False, **options):
        # Root's alone: the file says exactly what the host lets through.
        self.emit(
            render.render("firewall/cfps.rules", self.context()),
            output,
            dry_run=dry_run,
            then="Load them with: systemctl restart cfps-firewall (the unit comes from gen_systemd)",
            what="rules are",
        )

    def context(self) -> dict:
        interfaces = settings.DOCKER_BRIDGE_INTERFACES
        if not interfaces:
            raise CommandError("DOCKER_BRIDGE_INTERFACES is empty: name the Docker bridges, e.g. docker0,br-+")
        for name in interfaces:
            if not _INTERFACE.fullmatch(name):
                raise CommandError(f"DOCKER_BRIDGE_INTERFACES: {name!r} is not an interface name (e.g. docker0, br-+)")
        destination = settings.CONTAINERS.interface_ip
        if destination:
            try:
                destination = str(ipaddress.IPv4Address(destination))
            except ValueError:
                raise CommandError(f"DOCKER_INTERFACE_IP={destination!r} is not an IPv4 address") from None
        workers = []
        for network in settings.SWARM.workers:
            try:
                workers.append(str(ipaddress.IPv4Network(network)))
            except ValueError:
                raise CommandError(f"SWARM_WORKERS: {network!r} is not an IPv4 network such as 10.0.0.0/24") from None
        ports = [
            {"name": "the hub's API", "number": settings.TOPOLOGY.hub_port},
            {"name": "MySQL", "number": settings.FIREWALL_MYSQL_PORT},
        ]
        for port in ports:
            if not 0 < port["number"] < 65536:
                raise CommandError(f"{port['name']}: {port['number']} is not a port number")
        return {
            "interfaces": interfaces,
            "interfaces_text": ", ".join(interfaces),
            "destination": destination,
            "ports": ports,
            "hub_port": settings.TOPOLOGY.hub_port,
            "workers": workers,
        }
