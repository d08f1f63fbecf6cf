"""One line per part of the system, and exit code 0 only when every part is well (checks: deploy/health.py).

Why: when students say "it does not work", the operator needs one command that says which part is down and
what to do about it: the portal, its database and cache (Redis in prod), the course worker, the hub's API, the proxy, the
Docker engine and the notebook image, the dataset and its read-only account, free space on var/ and
Docker's data root, and the TLS certificate's expiry. Read-only; safe to run from cron or a monitor.

    .venv/bin/python manage.py status
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import health
from portal.config import Config, load
from portal.config.env import EnvError, var_dir


def proxy_token(config: Config) -> str:
    """The proxy's API token: from .env, else (dev) the one generated into var/secrets/; "" when there is none."""
    try:
        return config.secrets.get("CONFIGPROXY_AUTH_TOKEN")
    except EnvError:
        return ""


def certificate_path(given: Path | None) -> Path | None:
    if given is not None:
        return given
    if settings.APP_DOMAIN_NAME:
        default = Path("/etc/letsencrypt/live") / settings.APP_DOMAIN_NAME / "fullchain.pem"
        if default.exists():
            return default
    return None


class Command(BaseCommand):
    help = "Say, one line per component, whether the system is well; exit code 1 when a part is not."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument(
            "--certificate",
            type=Path,
            help="The TLS certificate to check (default: Let's Encrypt's for APP_DOMAIN_NAME, when it exists).",
        )

    def handle(self, *args, certificate=None, **options):
        config = load()
        topo = config.topology
        docker_required = config.hub.spawner in {"docker", "swarm"} or config.prod
        checks = [
            health.portal(f"{topo.portal_internal_url}/healthz"),
            health.database(),
            health.cache(),
            health.worker(),
            health.hub(topo.hub_api_url),
        ]
        token = proxy_token(config)
        if token:
            checks.append(health.proxy(topo.proxy_api_url, token))
        else:
            checks.append(
                health.Check("proxy", False, "no CONFIGPROXY_AUTH_TOKEN", "start the hub once (it generates it)")
            )
        checks += health.docker(settings.CONTAINERS.image, required=docker_required)
        checks.append(health.dataset(settings.DATASET, settings.DATASET_SAMPLE_PATH))
        checks.append(health.disk("disk var/", var_dir()))
        if (root := health.docker_root()) is not None:
            checks.append(health.disk("disk Docker", root))
        if (cert := certificate_path(certificate)) is not None:
            checks.append(health.certificate(cert))
        else:
            checks.append(health.Check("certificate", True, "none configured (plain http, or TLS elsewhere)"))

        width = max(len(check.name) for check in checks)
        for check in checks:
            mark = self.style.SUCCESS("ok  ") if check.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark}  {check.name:<{width}}  {check.detail}")
            if not check.ok and check.hint:
                self.stdout.write(f"      {'':<{width}}  -> {check.hint}")
        failed = [check.name for check in checks if not check.ok]
        if failed:
            raise CommandError(f"not well: {', '.join(failed)}")
