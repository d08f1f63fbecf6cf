"""Where every part listens, which public origin it is served on, and how the parts find each other.

Derived once from `.env`; the portal settings, `hubconfig`, `run.sh`, `gen_nginx` and the OAuth client
registration all read this, so a URL, a host name or a port is never typed twice.

Two public origins, on distinct HOST NAMES (cookies ignore ports, so two ports of one host would share
cookies):

    portal  PUBLIC_URL      sign-up, login, admin, the OAuth/OIDC provider at /o/
            (embedded default http://127.0.0.1:PORT; prod https://APP_DOMAIN_NAME)
    hub     HUB_PUBLIC_URL  JupyterHub at /jupyter/
            (embedded default http://localhost:PORT; prod https://HUB_DOMAIN_NAME = hub.APP_DOMAIN_NAME)
    a student's server      at /jupyter/user/<name>/ on a host of its own, <name>.<the hub's host>
            (embedded default http://<name>.localhost:PORT; prod https://<name>.HUB_DOMAIN_NAME)

Why: a student controls everything their own server sends, so a page under /jupyter/user/<name>/ is the
student's page. On its own origin it can neither read the portal's or the hub's pages and cookies nor call
them with the visitor's (cross-site requests carry no SameSite=Lax cookies; cross-origin ones cannot read the
answers, and the hub's API wants the XSRF token of its own pages).

    embedded:  browser ──▶ proxy :PORT ──┬─ Host PORTAL_HOST ──▶ portal (gunicorn) 127.0.0.1:PORTAL_PORT
                                         └─ any other host   ──▶ hub 127.0.0.1:HUB_PORT and users' servers
                                            (the hub's host, and <name>.<the hub's host> per student)
    prod:      browser ──▶ Nginx :443 ──┬─ APP_DOMAIN_NAME  ──▶ portal (gunicorn) 127.0.0.1:PORTAL_PORT
                                        └─ HUB_DOMAIN_NAME  ──▶ proxy :PORT ──▶ hub and users' servers
                                           and *.HUB_DOMAIN_NAME (the students' servers)

Rules:
- The proxy routes by host (JupyterHub's `subdomain_host` mode): the portal's host name reaches only the
  portal, never a student's page, whatever the path.
- Each student's server on a host of its own, `<name>.HUB_DOMAIN_NAME` (USER_SUBDOMAINS, on by default; in the
  embedded default `<name>.localhost`, which browsers send to loopback themselves): a student's page then
  cannot read the hub's pages or another student's server, nor call them with the visitor's cookies. It
  needs a wildcard DNS record and certificate in prod. The portal must then not live under the hub's
  domain, or a student could be given the portal's host name, and the hub's host must be a name (an IP
  address has no subdomains).
- USER_SUBDOMAINS=false (every student under the hub's own origin, `hub/jupyter/user/<name>/`) lets any
  student's page act as whoever opens it on the hub: prod refuses it unless ALLOW_SHARED_HUB_ORIGIN=true says
  the operator accepts that, and then, in any profile, staff are not hub admins (hubconfig/config.py).
- The hub calls the portal's token and userinfo endpoints, and the portal calls the hub's API, directly on
  loopback (`portal_internal_url`, `hub_api_url`), never through a public origin.
- APP_PROFILE=prod serves both origins over https only; anything else is refused with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.config.env import Env, EnvError

HUB_PREFIX = "/jupyter/"
# The embedded default's two host names: both resolve to loopback on a stock Debian machine without
# editing /etc/hosts (`*.localhost` names do in browsers, but not in every other client).
DEV_PORTAL_HOST = "127.0.0.1"
DEV_HUB_HOST = "localhost"
# What the portal and hub read from .env to derive the URLs; `ensure_hub_client` names them when the
# registered callback and the current ones disagree.
KEYS = ("PUBLIC_URL", "HUB_PUBLIC_URL", "APP_DOMAIN_NAME", "HUB_DOMAIN_NAME", "PORT")
# The request header our own proxies (JupyterHub's, Nginx) add with PROXY_SECRET to what they send the portal,
# never to a student's server (hubconfig/pyproxy.py, hubconfig/nodeproxy.mjs): the portal believes the
# X-Forwarded-For entry they appended only when it is there (accounts/throttle.py).
PROXY_SECRET_HEADER = "X-Cfps-Proxy"


@dataclass(frozen=True)
class Topology:
    public_url: str  # the portal's origin, e.g. https://cfps.example.edu (no trailing slash)
    hub_origin: str  # the hub's origin, e.g. https://hub.cfps.example.edu
    port: int
    bind_ip: str
    portal_port: int
    hub_port: int
    proxy_api_port: int
    hub_client_id: str
    user_subdomains: bool = True
    allow_shared_hub_origin: bool = False  # prod's opt-out of user_subdomains (module docstring)

    @property
    def portal_host(self) -> str:
        return urlsplit(self.public_url).hostname or ""

    @property
    def hub_host(self) -> str:
        return urlsplit(self.hub_origin).hostname or ""

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://") and self.hub_origin.startswith("https://")

    @property
    def shared_hub_origin(self) -> bool:
        """Every student's server on the hub's own origin (USER_SUBDOMAINS=false): staff get no hub rights."""
        return not self.user_subdomains

    @property
    def user_origin_pattern(self) -> str:
        """Where a student's server is served, for run.sh's banner: `http://<name>.localhost:8000` (JupyterHub's
        hook spells a name that is not a plain host label otherwise), or the hub's origin when shared."""
        if self.shared_hub_origin:
            return self.hub_origin
        scheme, rest = self.hub_origin.split("://", 1)
        return f"{scheme}://<name>.{rest}"

    @property
    def portal_origins(self) -> list[str]:
        """Origins the portal accepts form posts from (CSRF): its own, nothing else."""
        return [self.public_url]

    @property
    def portal_internal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal_port}"

    @property
    def hub_public_url(self) -> str:
        """Where the portal's "Open JupyterLab" button points."""
        return self.hub_origin + HUB_PREFIX

    @property
    def hub_callback_url(self) -> str:
        return f"{self.hub_origin}{HUB_PREFIX}hub/oauth_callback"

    @property
    def hub_logout_url(self) -> str:
        """The hub's logout, where the portal's logout sends the browser next (ends the hub's cookies)."""
        return f"{self.hub_origin}{HUB_PREFIX}hub/logout"

    @property
    def authorize_url(self) -> str:
        return f"{self.public_url}/o/authorize/"

    @property
    def login_url(self) -> str:
        """The portal's login page, where the hub sends a browser with the authorization as `next`."""
        return f"{self.public_url}/accounts/login/"

    @property
    def end_session_url(self) -> str:
        """OpenID Connect RP-initiated logout (django-oauth-toolkit), where the hub's logout ends."""
        return f"{self.public_url}/o/logout/"

    @property
    def post_logout_url(self) -> str:
        """Where a logout from either side lands: the portal's home page."""
        return f"{self.public_url}/"

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}{HUB_PREFIX}hub/api"

    @property
    def proxy_api_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_api_port}"


def _is_ip_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _origin(key: str, value: str) -> str:
    """`scheme://host[:port]` of a URL from .env, or a one-line error naming the key."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise EnvError(f"{key} must be an http:// or https:// URL with a host name, not {value!r}")
    if parts.path.strip("/") or parts.query:
        raise EnvError(f"{key} must be an origin without a path (e.g. https://cfps.example.edu), not {value!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def from_env(env: Env) -> Topology:
    port = env.int("PORT")
    prod = env.prod
    domain = env.get("APP_DOMAIN_NAME").strip().lower()
    hub_domain = env.get("HUB_DOMAIN_NAME").strip().lower() or (f"hub.{domain}" if domain else "")
    if domain:  # a server with a name: behind Nginx and TLS (docs/operator/deploy.md)
        default_portal, default_hub = f"https://{domain}", f"https://{hub_domain}"
    else:
        default_portal, default_hub = f"http://{DEV_PORTAL_HOST}:{port}", f"http://{DEV_HUB_HOST}:{port}"
    topo = Topology(
        public_url=_origin("PUBLIC_URL", env.get("PUBLIC_URL") or default_portal),
        hub_origin=_origin("HUB_PUBLIC_URL", env.get("HUB_PUBLIC_URL") or default_hub),
        port=port,
        bind_ip=env.get("BIND_IP"),
        portal_port=env.int("PORTAL_PORT"),
        hub_port=env.int("HUB_PORT"),
        proxy_api_port=env.int("PROXY_API_PORT"),
        hub_client_id=env.get("HUB_CLIENT_ID"),
        user_subdomains=env.bool("USER_SUBDOMAINS"),
        allow_shared_hub_origin=env.bool("ALLOW_SHARED_HUB_ORIGIN"),
    )
    check(topo, prod)
    return topo


def check(topo: Topology, prod: bool) -> None:
    """Refuse a topology that would put students' pages on the portal's origin, or plain http in prod."""
    if topo.portal_host == topo.hub_host:
        raise EnvError(
            f"the portal ({topo.public_url}) and the hub ({topo.hub_origin}) must have different host names "
            "(cookies ignore ports): set HUB_DOMAIN_NAME or HUB_PUBLIC_URL"
        )
    if topo.user_subdomains and topo.portal_host.endswith("." + topo.hub_host):
        raise EnvError(
            f"USER_SUBDOMAINS=true puts students on *.{topo.hub_host}, so the portal ({topo.portal_host}) "
            "must not be under it: use another HUB_DOMAIN_NAME"
        )
    if topo.user_subdomains and _is_ip_address(topo.hub_host):
        raise EnvError(
            f"USER_SUBDOMAINS=true puts each student on <name>.<the hub's host>, which needs a host name, not the "
            f"address {topo.hub_host}: give HUB_PUBLIC_URL a name (e.g. http://localhost:{topo.port})"
        )
    if prod and topo.shared_hub_origin and not topo.allow_shared_hub_origin:
        raise EnvError(
            "USER_SUBDOMAINS=false puts every student's server on the hub's own origin, where a student's page "
            "acts as whoever opens it; APP_PROFILE=prod refuses it unless ALLOW_SHARED_HUB_ORIGIN=true "
            "(staff then are not hub admins)"
        )
    if prod:
        plain = [url for url in (topo.public_url, topo.hub_origin) if not url.startswith("https://")]
        if plain:
            raise EnvError(
                f"APP_PROFILE=prod serves the portal and the hub over https only, not {', '.join(plain)} "
                "(set APP_DOMAIN_NAME, or https:// in PUBLIC_URL / HUB_PUBLIC_URL)"
            )
