"""Write the Nginx site for the server's domain, from `deploy/nginx/cfps.conf`.

Why: Nginx is the only thing the internet talks to. It ends TLS, sends everything to JupyterHub's proxy on
127.0.0.1:PORT (which routes / to the portal and /jupyter/ to the hub), upgrades websockets, passes the
client's address in the form the portal's rate limits expect, and answers certbot's challenges. Without
`--tls` it serves plain http, which is what certbot needs for the first certificate; with `--tls` http only
redirects to https. Safe to run again: an unchanged file is left alone.

    python manage.py gen_nginx --output /etc/nginx/sites-available/cfps          # before the certificate
    python manage.py gen_nginx --tls --output /etc/nginx/sites-available/cfps    # after certbot
"""

import re
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal import deploygen

# `http2 on;` replaced `listen ... http2` in Nginx 1.25.1 (the old form still works there, with a warning).
HTTP2_DIRECTIVE_SINCE = (1, 25, 1)
_SIZE = re.compile(r"[1-9][0-9]*[kKmMgG]?")


def nginx_version() -> tuple[int, ...] | None:
    """The installed Nginx's version, or None when there is no nginx on PATH."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        return None
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", result.stderr + result.stdout)
    return tuple(int(part) for part in match.groups()) if match else None


def listen_addresses(address: str, port: int, suffix: str = "") -> list[str]:
    """`listen` arguments: every IPv4 and IPv6 address by default, else just the one given."""
    extra = f" {suffix}" if suffix else ""
    if not address:
        return [f"{port}{extra}", f"[::]:{port}{extra}"]
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return [f"{address}:{port}{extra}"]


class Command(deploygen.GeneratorCommand, BaseCommand):
    help = "Write the Nginx site (server name APP_DOMAIN_NAME, everything proxied to 127.0.0.1:PORT)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tls", action="store_true", help="https on 443 with the certbot certificate; http redirects."
        )
        parser.add_argument("--output", type=Path, help="File to write (default: print to stdout).")
        parser.add_argument("--dry-run", action="store_true", help="Say whether --output would change; write nothing.")
        parser.add_argument(
            "--certificate",
            help="Certificate chain (default: /etc/letsencrypt/live/<APP_DOMAIN_NAME>/fullchain.pem).",
        )
        parser.add_argument(
            "--certificate-key", help="Its private key (default: /etc/letsencrypt/live/<APP_DOMAIN_NAME>/privkey.pem)."
        )
        parser.add_argument(
            "--acme-webroot",
            default="/var/www/certbot",
            help="Folder certbot --webroot writes its challenges to (default: /var/www/certbot).",
        )
        parser.add_argument(
            "--cache-dir",
            default="/var/lib/nginx/cfps-static",
            help="Where Nginx caches the portal's static files (default: /var/lib/nginx/cfps-static).",
        )
        parser.add_argument(
            "--max-body-size", default="100m", help="Largest upload or notebook save, Nginx syntax (default: 100m)."
        )
        parser.add_argument(
            "--listen",
            default="",
            help="Address to listen on (default: every IPv4 and IPv6 address; tests: 127.0.0.1).",
        )
        parser.add_argument("--http-port", type=int, default=80, help="Plain http port (default: 80).")
        parser.add_argument("--https-port", type=int, default=443, help="https port with --tls (default: 443).")

    def handle(self, *args, tls=False, output=None, dry_run=False, **options):
        text = deploygen.render("nginx/cfps.conf", self.context(tls, options))
        if output is None:
            if dry_run:
                raise CommandError("--dry-run needs --output (without it the file is only printed)")
            self.stdout.write(text, ending="")
            return
        deploygen.write(self, output, text, dry_run=dry_run)
        if not dry_run:
            self.say("Check and load it with: nginx -t && systemctl reload nginx")

    def context(self, tls: bool, options: dict) -> dict:
        domain = deploygen.check_domain(settings.APP_DOMAIN_NAME)
        live = Path("/etc/letsencrypt/live") / domain
        certificate = options["certificate"] or str(live / "fullchain.pem")
        certificate_key = options["certificate_key"] or str(live / "privkey.pem")
        if tls:
            for what, path in (("certificate", certificate), ("certificate key", certificate_key)):
                if not Path(path).is_file():
                    raise CommandError(
                        f"the {what} {path} does not exist: get it with certbot first (README, Deploy to a server)"
                    )
        http_port, https_port = options["http_port"], options["https_port"]
        for key, port in (("--http-port", http_port), ("--https-port", https_port)):
            if not 0 < port < 65536:
                raise CommandError(f"{key} must be a port number, not {port}")
        listen = deploygen.check_value("--listen", options["listen"]) if options["listen"] else ""
        hsts = f"max-age={settings.HSTS_SECONDS}" + ("; includeSubDomains" if settings.HSTS_INCLUDE_SUBDOMAINS else "")
        version = nginx_version()
        return {
            "tls": tls,
            "domain": domain,
            "front": f"127.0.0.1:{settings.TOPOLOGY.port}",
            "http_listen": listen_addresses(listen, http_port),
            "https_listen": listen_addresses(
                listen, https_port, "ssl" if version and version >= HTTP2_DIRECTIVE_SINCE else "ssl http2"
            ),
            "http2_directive": bool(version and version >= HTTP2_DIRECTIVE_SINCE),
            "https_port_suffix": "" if https_port == 443 else f":{https_port}",
            "certificate": deploygen.check_value("--certificate", certificate),
            "certificate_key": deploygen.check_value("--certificate-key", certificate_key),
            "acme_webroot": deploygen.check_value("--acme-webroot", options["acme_webroot"]),
            "cache_dir": deploygen.check_value("--cache-dir", options["cache_dir"]),
            "max_body_size": deploygen.check_value("--max-body-size", options["max_body_size"], _SIZE),
            "hsts": hsts,
        }
