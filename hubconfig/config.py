"""Everything JupyterHub is told: `apply_config(c, config)`, one set-only `update_*` function per section
(TLJH's configurer is the model), each testable alone against a plain `traitlets.config.Config()`.

Rules:
- Only assignments to `c`: applying twice gives the same config.
- Values come from the typed configuration the portal uses too (`portal.config.Config`: URLs and ports from
  its `topology`, the hub's settings from `hub`, secrets from `secrets`, which outside prod reads var/secrets/
  when .env leaves them out; made beforehand by `python -m portal.config prepare`, never here). Nothing here
  reads `.env` itself.
- The hub lives at /jupyter/ on its own origin (HUB_PUBLIC_URL), never the portal's: the proxy on PORT routes
  by host name (JupyterHub's `subdomain_host` mode), the portal's host to the portal (gunicorn), every other
  host to the hub and the students' servers. Each student's server gets `<name>.<hub host>` (USER_SUBDOMAINS,
  the default; JupyterHub's own "idna" hook); with USER_SUBDOMAINS=false every student shares the hub's host
  (`one_host`) and staff get no rights on the hub (`staff_role`).
- Trust: a student's server sends what the student likes. The hub's pages may not be framed at all; the
  servers ignore configuration from the student's home; staff never hold JupyterHub's `admin` role.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from jupyterhub.utils import subdomain_hook_idna

from portal.config import Config, keys, load, placeholders, topology
from portal.config.env import BASE_DIR, EnvError, var_dir
from userspace.homes import local_home_template

LAB_SETTINGS_DIR = Path(__file__).resolve().parent / "lab_settings"
# The servers' JupyterLab options; the notebook image has the file as <venv>/etc/jupyter/jupyter_lab_config.json
# (deploy/imagebuild.py, singleuser/image/Dockerfile), the local spawner passes it on the command line.
# LabApp.extension_manager=readonly: the extension manager lists what is installed and installs nothing.
# JupyterLab's default (pypi) makes an HTTP client with the system's TLS certificates at every server start,
# to search PyPI: 85 to 185 ms per start under cProfile in the image (less without the profiler; across whole
# benchmark runs smaller than their noise), for installs a class does not make into an image it shares.
LAB_CONFIG = LAB_SETTINGS_DIR / "jupyter_lab_config.json"


class HubConfigError(SystemExit):
    """Stops the hub at start-up with one line naming the problem."""

    def __init__(self, message: str):
        super().__init__(f"CFPS hub configuration error: {message}")


def crypt_key(config: Config) -> str:
    """The key that encrypts auth state (tokens) in the hub database; hex, 32 bytes."""
    return config.secrets.get("JUPYTERHUB_CRYPT_KEY")


def process_environment(config: Config) -> dict[str, str]:
    """Variables the hub process itself must see (JupyterHub reads the crypt key only from its environment)."""
    try:
        return {"JUPYTERHUB_CRYPT_KEY": crypt_key(config)}
    except EnvError as exc:  # prod without the key: one line, not a traceback
        raise HubConfigError(str(exc)) from None


def startup_warnings(config: Config) -> list[str]:
    """Lines the hub prints to its log when it starts."""
    from hubconfig.docker import choose_spawner, docker_warnings
    from hubconfig.spawners import WARNING

    spawner, why = choose_spawner(config)
    lines = [f"Spawner: {spawner} ({why})"]
    if spawner == "local":
        lines.append(f"WARNING: {WARNING}")
    elif spawner == "docker":
        lines += docker_warnings(config)
    elif spawner == "swarm":
        from hubconfig.swarm import swarm_warnings

        lines += swarm_warnings(config)
    return lines


def proxy_command(config: Config) -> list[str]:
    if config.hub.proxy == "python":
        # The Python port with host-based routing added (see hubconfig/pyproxy.py for why).
        command = [sys.executable, str(Path(__file__).with_name("pyproxy.py"))]
    else:
        proxy = BASE_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
        if not proxy.exists():
            raise HubConfigError(f"PROXY=node but {proxy} is missing; install it with: npm ci (in {BASE_DIR})")
        node = shutil.which("node")
        if not node:
            raise HubConfigError("PROXY=node but node is not on PATH; install Node.js 18.18 or newer")
        # The proxy's own entry point, with our preload (the portal's header on its route only).
        command = [node, "--import", Path(__file__).with_name("nodeproxy.mjs").as_uri(), str(proxy)]
    # Marks the requests the proxy forwards to the portal, and only those (never a student's server's), so the
    # portal believes the X-Forwarded-For entry the proxy appended (accounts/throttle.py); Nginx sets the same
    # header in production. Both proxies take these two options (hubconfig/pyproxy.py, nodeproxy.mjs).
    secret = config.secrets.get("PROXY_SECRET")
    return [
        *command,
        f"--cfps-portal-target={config.topology.portal_internal_url}",
        f"--cfps-portal-header={topology.PROXY_SECRET_HEADER}:{secret}",
    ]


def log_request(handler) -> None:
    """JupyterHub's request log line, with our proxy's secret header masked as well: for a failed request it
    writes out every header, and masks only Authorization and Cookie."""
    from jupyterhub.log import log_request as hub_log_request

    if topology.PROXY_SECRET_HEADER in handler.request.headers:
        handler.request.headers[topology.PROXY_SECRET_HEADER] = "[secret]"
    hub_log_request(handler)


# --- portal staff on the hub (issue 20) ---------------------------------------------------------------------
# Staff get this role of ours instead of JupyterHub's `admin`: JupyterHub 6.1 refuses to narrow the admin role
# (roles.create_role: "Cannot override admin role admin.scopes"), and it holds admin:auth_state (every user's
# tokens at the portal), tokens (an API token for anyone, used outside the browser) and admin:users (making
# anyone an admin). What staff do on the hub: the admin page's list of users, groups and servers, starting and
# stopping a student's server, and opening it to help. Nothing else of the portal's needs more: the portal
# calls the hub as its own service (`portal_scopes` below).
STAFF_ROLE_NAME = "cfps-staff"
STAFF_SCOPES = [
    "admin-ui",
    "list:users",
    "read:users",
    "list:groups",
    "read:groups",
    "servers",
    "access:servers",
    "read:hub",
]


def staff_role(topo: topology.Topology) -> dict:
    """The hub role portal staff get. On a shared hub origin it holds nothing: any student's page runs there
    with the rights of whoever opens it, so staff must gain nothing a student lacks."""
    if topo.shared_hub_origin:
        return {"name": STAFF_ROLE_NAME, "description": "Portal staff: no rights (USER_SUBDOMAINS=false)", "scopes": []}
    return {"name": STAFF_ROLE_NAME, "description": "Portal staff (hubconfig/config.py)", "scopes": STAFF_SCOPES}


def one_host(name: str, domain: str, kind: str) -> str:
    """JupyterHub's subdomain hook without per-user subdomains: every server on the hub's own host."""
    return domain


def refuse_missing_or_placeholder_secrets(config: Config) -> None:
    """Prod: every secret the hub needs (the key table's needed_by) is in .env and is not an example value."""
    missing = config.secrets.missing("hub")
    if missing:
        raise HubConfigError(f"APP_PROFILE=prod needs {', '.join(missing)} in .env")
    found = config.secrets.placeholders("hub")
    if found:
        raise HubConfigError(placeholders.message(found))


def oidc_public_key(config: Config) -> str:
    """The public half of the portal's ID token signing key, or "" when this hub cannot read the key."""
    try:
        return keys.public_key_pem(config.secrets.oidc_private_key_pem())
    except (EnvError, ValueError):
        return ""


def apply_config(c, config: Config | None = None) -> None:
    """Everything JupyterHub is told, section by section; each `update_*` only sets, so this can run twice."""
    config = config or load()
    try:
        config.topology  # noqa: B018  (checked first: an origin mistake explains more than a missing secret)
        if config.prod:
            refuse_missing_or_placeholder_secrets(config)
        update_hub(c, config)
        update_proxy(c, config)
        update_auth(c, config)
        update_services(c, config)
        update_limits(c, config)
        update_spawner(c, config)
        update_templates(c, config)
    except EnvError as exc:
        raise HubConfigError(str(exc)) from None


def update_hub(c, config: Config) -> None:
    """The hub on its own origin; the proxy routes by host (portal/config/topology.py)."""
    topo = config.topology
    state = var_dir() / "hub"
    # bind_url alone: its path is the hub's base URL. Setting base_url too makes JupyterHub ignore
    # bind_url and listen on every interface at its default port.
    c.JupyterHub.bind_url = f"http://{topo.bind_ip}:{topo.port}{topology.HUB_PREFIX}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{topo.hub_port}"
    # subdomain_host turns on host routing in the proxy; the hub is then the default route of every host
    # (it must see requests for servers that are not running), and the portal's host name has a route of its
    # own, so no path under the portal's host ever reaches the hub or a student's server.
    c.JupyterHub.subdomain_host = topo.hub_origin
    # (the hook itself, not its name "idna": JupyterHub's services read the trait before it is validated)
    c.JupyterHub.subdomain_hook = subdomain_hook_idna if topo.user_subdomains else one_host
    # The hub's login cookie is host-only (the hub's host, path /jupyter/hub/): no student's host receives it.
    # Over https it is also __Host-, which no student's host can plant (cookie tossing); __Host- cookies must
    # sit on path /, shared by every server on the host, so only with a host per student (JupyterHub's own
    # advice). The session id cookie does go to the students' hosts (JupyterHub sets it on the hub's domain):
    # it is no credential, the servers key their cache of token checks by it, so clearing it at logout ends
    # their cached answers at once.
    c.JupyterHub.cookie_host_prefix_enabled = topo.user_subdomains and topo.is_https
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    # Links, redirects and cookie security come from PUBLIC_URL, not from request headers: behind Nginx's
    # TLS, the proxy appends "http" to X-Forwarded-Proto and the hub would otherwise set non-Secure cookies.
    c.JupyterHub.public_url = topo.hub_public_url
    # The hub's own pages: framed by nothing (JupyterHub's own default; a student's page on a shared origin
    # read the XSRF token out of a framed hub page), no plugins, no foreign <base>, and no hub URL (with its
    # query) leaked in a Referer to another origin.
    c.JupyterHub.tornado_settings = {
        "log_function": log_request,
        # The hub's and the servers' login cookies end when the browser closes (JupyterHub hands these options to
        # the servers as JUPYTERHUB_COOKIE_OPTIONS): at a shared PC (这是公共电脑, accounts/sessions.py) closing the
        # browser must leave the next person in no one's JupyterLab. Nobody else notices: a browser that comes back
        # is logged in again through its portal session, without a password.
        "cookie_options": {"expires_days": None},
        "headers": {
            "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        },
    }
    # The hub measures its own event loop's responsiveness by waking every 50 ms: 5 ms of CPU a second while
    # idle, under 1 at 0.5 s. A loop blocked for a second is still logged.
    c.PeriodicMetricsCollector.event_loop_interval_resolution = 0.5


def update_proxy(c, config: Config) -> None:
    topo = config.topology
    c.ConfigurableHTTPProxy.command = proxy_command(config)
    c.ConfigurableHTTPProxy.api_url = topo.proxy_api_url
    c.ConfigurableHTTPProxy.auth_token = config.secrets.get("CONFIGPROXY_AUTH_TOKEN")
    c.ConfigurableHTTPProxy.pid_file = str(var_dir() / "hub" / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.Proxy.extra_routes = {f"{topo.portal_host}/": topo.portal_internal_url}


def update_auth(c, config: Config) -> None:
    """Login through the portal (hubconfig/authenticator.py)."""
    topo = config.topology
    c.JupyterHub.authenticator_class = "hubconfig.authenticator.PortalOAuthenticator"
    auth = c.PortalOAuthenticator
    auth.client_id = topo.hub_client_id
    auth.client_secret = config.secrets.get("HUB_CLIENT_SECRET")
    auth.authorize_url = topo.authorize_url  # the browser goes here, to the portal's origin
    auth.portal_login_url = topo.login_url  # by way of the portal's login page (hubconfig/authenticator.py)
    auth.token_url = f"{topo.portal_internal_url}/o/token/"  # the hub calls these on loopback
    auth.userdata_url = f"{topo.portal_internal_url}/o/userinfo/"
    # A login reads the claims from the ID token the token endpoint returned, checked with the portal's public
    # key; refreshes still ask userinfo (hubconfig/authenticator.py). Without the key, logins ask userinfo too.
    auth.id_token_public_key = oidc_public_key(config)
    auth.id_token_issuer = f"{topo.public_url}/o"
    auth.oauth_callback_url = topo.hub_callback_url
    auth.scope = ["openid", "profile", "email"]
    auth.username_claim = "preferred_username"
    auth.enable_pkce = True
    auth.allow_all = True  # every active portal account; inactive ones cannot get a token
    auth.manage_groups = True
    auth.auth_state_groups_key = "oauth_user.groups"
    auth.enable_auth_state = True
    auth.auth_refresh_age = config.hub.auth_refresh_seconds
    # Staff get the role `staff_role` (above), never JupyterHub's admin: no admin_users, and the admin role's
    # members are exactly none at every start, so an account made admin before this rule loses it at once.
    auth.manage_roles = True
    # The staff role's holders are kept across a hub restart either way (the role names no users); without the
    # reset, JupyterHub 5/6 cannot start again once anyone holds a role a login gave (KeyError 'users' in
    # init_role_assignment, tests/e2e/test_hub_accounts.py), and with it a role the authenticator no longer
    # names is dropped at start, as it should be.
    auth.reset_managed_roles_on_startup = True
    auth.staff_role = staff_role(topo)
    auth.admin_users = set()
    auth.refresh_pre_spawn = True
    auth.auto_login = True
    auth.login_service = "CFPS"
    # The hub's logout continues to the portal's OpenID Connect end-session endpoint (with the id_token as
    # proof, see hubconfig/authenticator.py), which ends the portal session and lands on the portal's home.
    auth.logout_redirect_url = topo.end_session_url
    auth.post_logout_redirect_url = topo.post_logout_url


def update_services(c, config: Config) -> None:
    """The portal (makes and removes hub users, starts and stops servers, reads memory) and the idle culler, with
    their roles."""
    from hubconfig import memory, users

    services = [{"name": "portal", "api_token": config.secrets.get("HUB_API_TOKEN")}]
    # What the portal's token may do, and why (accounts/hub.py, staff/usage.py). It is the identity provider,
    # yet it may not mint a hub token for anyone (no `tokens`), read anyone's auth state or make anyone admin
    # (no `admin:users`), nor change groups or roles other than by what a login would set:
    # - servers (start:servers, delete:servers, read:servers): start a student's server when they log in to the
    #   portal, show its state on the portal's home, stop it (deactivation, the usage page's stop button);
    # - delete:users: remove a deactivated, deleted or renamed person's hub user, which deletes every hub
    #   token they hold (their own API tokens included). Narrower than `tokens` or `admin:users`: it cannot
    #   create tokens, create users or grant admin rights;
    # - the custom users scope: make or update a hub user before its first login with the groups and staff role
    #   its login would give (hubconfig/users.py), and nothing else: the REST API has no narrower way (creating
    #   users there needs admin:users; assigning a role, no REST call at all), and admin:groups/groups would let
    #   the portal put anyone into any group outside a login's rules;
    # - read:users:name, list:users, read:users:activity: the staff usage page lists every user's servers;
    # - users:activity: a warm-up (course/warmup.py) stamps its server's activity so the idle culler grants the
    #   grace (WARMUP_GRACE_MINUTES), the only way to hold off jupyterhub-idle-culler for one user;
    # - the custom memory scope: the same page's memory column, which the hub publishes (hubconfig/memory.py)
    #   because it holds the Docker socket and the portal does not.
    portal_scopes = [
        "servers",
        "delete:users",
        users.SCOPE,
        "read:users:name",
        "list:users",
        "read:users:activity",
        "users:activity",
        memory.SCOPE,
    ]
    roles = [{"name": "portal", "scopes": portal_scopes, "services": ["portal"]}]
    c.JupyterHub.custom_scopes = {memory.SCOPE: memory.SCOPE_DEFINITION, users.SCOPE: users.SCOPE_DEFINITION}
    # (JupyterHub calls extra_handlers deprecated in favour of services and logs so at start; a service would
    # need a process, a port and the socket of its own for two small endpoints.)
    c.JupyterHub.extra_handlers = [(memory.URL, memory.MemoryHandler), (users.URL, users.SyncUserHandler)]
    hub = config.hub
    if hub.idle_timeout_seconds > 0:
        culler = [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={hub.idle_timeout_seconds}",
            f"--cull-every={hub.cull_every_seconds}",
        ]
        services.append({"name": "idle-culler", "command": culler})
        roles.append(
            {
                "name": "idle-culler",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["idle-culler"],
            }
        )
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = [*roles, {"name": "admin", "users": []}]
    # The portal's token is random (generated, or refused in prod when shorter than 32 characters or a
    # placeholder: portal/config/placeholders.py), so the hub keeps it as it keeps the tokens it makes: hashed
    # once. JupyterHub's default treats a configured token as a password, 16384 rounds of SHA-512 at every
    # API call the portal makes (2.5 ms of the hub's CPU): each warm-up start, login-time start and home-page
    # state. A hub database made before this setting keeps the slow hash until HUB_API_TOKEN changes.
    c.JupyterHub.trust_user_provided_tokens = True


def update_limits(c, config: Config) -> None:
    c.JupyterHub.active_server_limit = config.hub.active_server_limit
    c.JupyterHub.concurrent_spawn_limit = config.hub.concurrent_spawn_limit
    c.Spawner.start_timeout = config.hub.spawn_timeout_seconds
    c.Spawner.http_timeout = config.hub.spawn_timeout_seconds


def update_spawner(c, config: Config) -> None:
    """Which spawner runs the users' servers, and what every server gets whichever it is."""
    from hubconfig.docker import apply_docker_config, choose_spawner

    spawner = choose_spawner(config)[0]
    if spawner == "local":
        update_local_spawner(c, config)
    elif spawner == "swarm":  # one Swarm service per user, the same containers: hubconfig/swarm.py
        from hubconfig.swarm import apply_swarm_config

        apply_swarm_config(c, config)
    else:  # one container per user: hubconfig/docker.py
        apply_docker_config(c, config)
    # Local servers are the hub's children and must go with it; containers outlive a hub restart (an upgrade,
    # `systemctl restart cfps-hub`) and the hub finds them again, so students keep their kernels.
    c.JupyterHub.cleanup_servers = spawner == "local"
    c.Spawner.default_url = "/lab"
    # The server ignores Jupyter configuration and extensions in the student's home (~/.jupyter,
    # ~/.local/share/jupyter): a student once served a script page from their server with extra_static_paths.
    # Kernels are not servers: the data folder's start-up files and helpers still load (ipython_kernel_config.py
    # lives in the environment, not the home).
    c.Spawner.disable_user_config = True
    # JupyterLab defaults: Chinese UI (students can switch in Settings → Language) and no news or update
    # checks fetched from outside, which campus networks may block; LAB_CONFIG's options.
    c.Spawner.args = [f"--LabApp.app_settings_dir={LAB_SETTINGS_DIR}", *lab_options()]


def lab_options() -> list[str]:
    """LAB_CONFIG as command-line options (`--LabApp.extension_manager=readonly`)."""
    sections = json.loads(LAB_CONFIG.read_text())
    return [f"--{app}.{key}={value}" for app, options in sections.items() for key, value in options.items()]


def update_local_spawner(c, config: Config) -> None:
    from portal.config import dataset

    if config.prod:
        raise HubConfigError("SPAWNER=local gives users no isolation and is refused in APP_PROFILE=prod")
    bin_dir = Path(sys.executable).parent
    c.JupyterHub.spawner_class = "hubconfig.spawners.LocalHomeSpawner"
    c.LocalHomeSpawner.home_dir_template = local_home_template()  # where the course worker finds it too
    c.LocalHomeSpawner.shared_root = str(var_dir() / "shared")
    singleuser = shutil.which("jupyterhub-singleuser", path=str(bin_dir)) or str(bin_dir / "jupyterhub-singleuser")
    c.LocalHomeSpawner.cmd = [singleuser]
    # The dataset as portal/config/dataset.py defines it; CFPS_DATA_DIR and PYTHONPATH come from the spawner.
    c.LocalHomeSpawner.environment = {
        "CFPS_DATASET_URL": dataset.notebook_dataset_url(config.dataset, dataset.local_data_dir())
    }


def update_templates(c, config: Config) -> None:
    """The hub's pages: the portal's look, Chinese by default, announcements (hubconfig/templating.py)."""
    from hubconfig.templating import apply_templates

    apply_templates(c, config.topology)
