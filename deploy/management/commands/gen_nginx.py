"""Write the Nginx site for the server's domain, from `deploy/nginx/cfps.conf`.

Why: Nginx is the only thing the internet talks to. It serves two host names (portal/config/topology.py): the
portal's (APP_DOMAIN_NAME) goes straight to gunicorn on 127.0.0.1:PORTAL_PORT, the hub's (HUB_DOMAIN_NAME,
and *.HUB_DOMAIN_NAME, where each student's server is, unless USER_SUBDOMAINS=false) to JupyterHub's proxy on
127.0.0.1:PORT. With `--tls` the hub's certificate must cover the wildcard; it says so in one line if not. It ends TLS, upgrades
websockets, passes the client's address with the proxy secret the portal's rate limits expect, and answers
certbot's challenges for both names. Its access log has no query strings and no one-time link's token; every
response of both names, its own error pages too, carries the security headers (X-Content-Type-Options,
Referrer-Policy, Permissions-Policy, X-Frame-Options where the app sets no framing rule, and with `--tls`
HSTS, includeSubDomains on the hub's name), and `--tls` staples OCSP. Without `--tls` it serves plain http, which is what certbot needs for
the first certificate; with `--tls` http only redirects to https. The file holds PROXY_SECRET, so it is
written readable by its owner only (Nginx reads it as root). Safe to run again: an unchanged file is left
alone.

    python manage.py gen_nginx --output /etc/nginx/sites-available/cfps          # before the certificate
    python manage.py gen_nginx --tls --output /etc/nginx/sites-available/cfps    # after certbot
"""

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploy import render
from portal.config.topology import PROXY_SECRET_HEADER

# `http2 on;` replaced `listen ... http2` in Nginx 1.25.1 (the old form still works there, with a warning).
HTTP2_DIRECTIVE_SINCE = (1, 25, 1)
_SIZE = re.compile(r"[1-9][0-9]*[kKmMgG]?")
# Features no page of the site uses (Permissions-Policy, deploy/nginx/_security_http.conf). Not the clipboard
# or fullscreen, which JupyterLab uses.
PERMISSIONS_POLICY = (
    "accelerometer=(), bluetooth=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), hid=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), serial=(), usb=(), xr-spatial-tracking=()"
)
RESOLV_CONF = Path("/etc/resolv.conf")
# Debian's ca-certificates bundle: the roots an OCSP response's signer chains up to (a public CA's).
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


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


def system_resolvers(resolv_conf: Path = RESOLV_CONF) -> list[str]:
    """The name servers of /etc/resolv.conf, as Nginx's `resolver` takes them (IPv6 in brackets)."""
    found = []
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and "%" not in words[1]:
            try:
                address = ipaddress.ip_address(words[1])
            except ValueError:
                continue
            found.append(f"[{address}]" if address.version == 6 else str(address))
    return found


def certificate_names(path: str) -> set[str]:
    """The DNS names a PEM certificate (its first, the server's own) is valid for, lower case."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read the certificate {path}: {exc}") from None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {name.lower() for name in san.get_values_for_type(x509.DNSName)}


def covers(names: set[str], host: str) -> bool:
    """Whether a certificate for `names` is valid for `host` (a wildcard stands for exactly one label)."""
    parent = host.split(".", 1)[1] if "." in host else ""
    return host in names or (bool(parent) and f"*.{parent}" in names)


def check_wildcard(path: str, hub_host: str) -> None:
    """Each student's server is `<name>.HUB_DOMAIN_NAME` (USER_SUBDOMAINS): the hub's certificate must cover the
    hub's name and the wildcard under it, or browsers refuse every student's JupyterLab."""
    names = certificate_names(path)
    missing = [name for name in (hub_host, f"*.{hub_host}") if not covers(names, name)]
    if missing:
        raise CommandError(
            f"the hub certificate {path} does not cover {' or '.join(missing)}: each student's server is served at "
            f"<name>.{hub_host}, so it needs a wildcard certificate (a campus CA's, or certbot's DNS-01 challenge; "
            "README, Deploy to a server), passed with --hub-certificate"
        )


class Command(render.GeneratorCommand, BaseCommand):
    help = "Write the Nginx site: the portal's host to gunicorn, the hub's host(s) to JupyterHub's proxy."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tls", action="store_true", help="https on 443 with the certbot certificate; http redirects."
        )
        parser.add_argument("--output", type=Path, help="File to write (default: print to stdout).")
        parser.add_argument("--dry-run", action="store_true", help="Say whether --output would change; write nothing.")
        parser.add_argument(
            "--certificate",
            help="Certificate chain for both names (default: /etc/letsencrypt/live/<APP_DOMAIN_NAME>/fullchain.pem).",
        )
        parser.add_argument(
            "--certificate-key", help="Its private key (default: /etc/letsencrypt/live/<APP_DOMAIN_NAME>/privkey.pem)."
        )
        parser.add_argument(
            "--hub-certificate",
            help="A separate certificate for the hub's names, HUB_DOMAIN_NAME and *.HUB_DOMAIN_NAME (a wildcard "
            "certificate, e.g. from the campus CA; default: the same as --certificate).",
        )
        parser.add_argument("--hub-certificate-key", help="Its private key (default: the same as --certificate-key).")
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
        parser.add_argument(
            "--access-log",
            default="/var/log/nginx/access.log",
            help="Nginx's access log for both names, without query strings or one-time links' tokens "
            "(default: /var/log/nginx/access.log).",
        )
        parser.add_argument(
            "--resolver",
            help="DNS server(s) Nginx asks for the OCSP responder's address with --tls, space-separated "
            "(default: the nameservers of /etc/resolv.conf).",
        )
        parser.add_argument(
            "--ocsp-trusted-certificate",
            default=SYSTEM_CA_BUNDLE,
            help="CA certificates that sign the certificate's OCSP responses, for stapling with --tls "
            f"(default: the system's, {SYSTEM_CA_BUNDLE}; a campus CA: its own certificate).",
        )

    def handle(self, *args, tls=False, output=None, dry_run=False, **options):
        self.emit(
            render.render("nginx/cfps.conf", self.context(tls, options)),
            output,
            dry_run=dry_run,
            then="Check and load it with: nginx -t && systemctl reload nginx",
        )

    def context(self, tls: bool, options: dict) -> dict:
        topo = settings.TOPOLOGY
        render.check_domain(settings.APP_DOMAIN_NAME)  # the operator's own setting, named if missing
        portal_host = render.check_domain(topo.portal_host, "APP_DOMAIN_NAME (or PUBLIC_URL)")
        hub_host = render.check_domain(topo.hub_host, "HUB_DOMAIN_NAME (or HUB_PUBLIC_URL)")
        hub_names = f"{hub_host} *.{hub_host}" if topo.user_subdomains else hub_host
        live = Path("/etc/letsencrypt/live") / portal_host
        certificate = options["certificate"] or str(live / "fullchain.pem")
        certificate_key = options["certificate_key"] or str(live / "privkey.pem")
        hub_certificate = options["hub_certificate"] or certificate
        hub_certificate_key = options["hub_certificate_key"] or certificate_key
        if tls:
            for what, path in (
                ("certificate", certificate),
                ("certificate key", certificate_key),
                ("hub certificate", hub_certificate),
                ("hub certificate key", hub_certificate_key),
            ):
                if not Path(path).is_file():
                    raise CommandError(
                        f"the {what} {path} does not exist: get it with certbot first (docs/operator/deploy.md)"
                    )
            if topo.user_subdomains:
                check_wildcard(hub_certificate, hub_host)
        http_port, https_port = options["http_port"], options["https_port"]
        for key, port in (("--http-port", http_port), ("--https-port", https_port)):
            if not 0 < port < 65536:
                raise CommandError(f"{key} must be a port number, not {port}")
        listen = render.check_value("--listen", options["listen"]) if options["listen"] else ""
        version = nginx_version()
        return {
            **self.security_context(tls, options),
            "tls": tls,
            "portal_host": portal_host,
            "hub_names": hub_names,
            "portal_upstream": f"127.0.0.1:{topo.portal_port}",
            "front": f"127.0.0.1:{topo.port}",
            "proxy_secret_header": PROXY_SECRET_HEADER,
            "proxy_secret": render.check_value("PROXY_SECRET", settings.PROXY_SECRET),
            "http_listen": listen_addresses(listen, http_port),
            "https_listen": listen_addresses(
                listen, https_port, "ssl" if version and version >= HTTP2_DIRECTIVE_SINCE else "ssl http2"
            ),
            "http2_directive": bool(version and version >= HTTP2_DIRECTIVE_SINCE),
            "https_port_suffix": "" if https_port == 443 else f":{https_port}",
            "certificate": render.check_value("--certificate", certificate),
            "certificate_key": render.check_value("--certificate-key", certificate_key),
            "hub_certificate": render.check_value("--hub-certificate", hub_certificate),
            "hub_certificate_key": render.check_value("--hub-certificate-key", hub_certificate_key),
            "acme_webroot": render.check_value("--acme-webroot", options["acme_webroot"]),
            "cache_dir": render.check_value("--cache-dir", options["cache_dir"]),
            "max_body_size": render.check_value("--max-body-size", options["max_body_size"], _SIZE),
        }

    def security_context(self, tls: bool, options: dict) -> dict:
        """Logging, security headers, HSTS and OCSP stapling (deploy/nginx/_security_*.conf, _tls.conf)."""
        portal_hsts = f"max-age={settings.HSTS_SECONDS}" + (
            "; includeSubDomains" if settings.HSTS_INCLUDE_SUBDOMAINS else ""
        )
        # Per-student origins are subdomains of the hub's name: all https, always (the portal's name may have
        # siblings on plain http elsewhere on campus, so there it is HSTS_INCLUDE_SUBDOMAINS's choice).
        hub_hsts = f"max-age={settings.HSTS_SECONDS}; includeSubDomains"
        resolvers = (options["resolver"] or "").split() or system_resolvers()
        if tls and not resolvers:
            raise CommandError(f"no nameserver in {RESOLV_CONF}: name one for OCSP stapling with --resolver")
        trusted = options["ocsp_trusted_certificate"]
        if tls and not Path(trusted).is_file():
            raise CommandError(
                f"the OCSP trusted certificate {trusted} does not exist: apt-get install ca-certificates"
            )
        return {
            "access_log": render.check_value("--access-log", options["access_log"]),
            "permissions_policy": PERMISSIONS_POLICY,
            "portal_hsts": portal_hsts if tls else "",
            "hub_hsts": hub_hsts if tls else "",
            "resolver": " ".join(render.check_value("--resolver", value) for value in resolvers),
            "ocsp_trusted_certificate": render.check_value("--ocsp-trusted-certificate", trusted),
        }
