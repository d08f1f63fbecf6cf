"""hubconfig.apply_config against a plain traitlets Config: what the hub is told, without starting it.
(tests/e2e starts the real hub with the same function.)"""

import copy
from pathlib import Path

import pytest
from traitlets.config import Config

from hubconfig.config import STAFF_ROLE_NAME, STAFF_SCOPES, HubConfigError, apply_config, process_environment
from portal.config import Config as AppConfig
from portal.config import topology
from portal.config.env import BASE_DIR, PREPARE_HINT, Env, EnvError
from tests.live import run_async


def configured(**values) -> Config:
    # Unset, the spawner depends on this machine (Docker or not); tests/hubconfig/test_docker_config.py covers that.
    values.setdefault("SPAWNER", "local")
    c = Config()
    apply_config(c, AppConfig(Env(values)))
    return c


def test_defaults_put_the_hub_on_its_own_host_and_route_the_portals_host_to_the_portal():
    c = configured()
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/jupyter/"
    assert "base_url" not in c.JupyterHub  # would make JupyterHub ignore bind_url and listen everywhere
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8081"
    # Host routing: the portal's host name has its own route; the hub is every other host's default.
    assert c.JupyterHub.subdomain_host == "http://localhost:8000"
    assert "hub_routespec" not in c.JupyterHub
    assert c.Proxy.extra_routes == {"127.0.0.1/": "http://127.0.0.1:8010"}
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"


def test_by_default_each_student_gets_a_host_of_their_own():
    c = configured()
    assert c.JupyterHub.subdomain_hook("alice", "localhost", "user") == "alice.localhost"
    assert configured(APP_DOMAIN_NAME="x.edu").JupyterHub.subdomain_hook("a", "hub.x.edu", "user") == "a.hub.x.edu"
    assert topology.from_env(Env({})).user_subdomains is True
    assert topology.from_env(Env({"APP_PROFILE": "prod", "APP_DOMAIN_NAME": "x.edu"})).user_subdomains is True


def test_without_user_subdomains_every_server_shares_the_hubs_host():
    hook = configured(USER_SUBDOMAINS="false").JupyterHub.subdomain_hook
    assert hook("alice", "localhost", "user") == "localhost"


def test_the_hubs_cookies_carry_the_host_prefix_over_https_with_a_host_per_student():
    assert configured(APP_DOMAIN_NAME="cfps.example.edu").JupyterHub.cookie_host_prefix_enabled is True
    # (plain http cannot have __Host- cookies; a shared host must not put them on path /)
    assert configured().JupyterHub.cookie_host_prefix_enabled is False
    shared = configured(APP_DOMAIN_NAME="cfps.example.edu", USER_SUBDOMAINS="false")
    assert shared.JupyterHub.cookie_host_prefix_enabled is False


PROD_HUB = {"APP_PROFILE": "prod", "APP_DOMAIN_NAME": "cfps.example.edu.cn"}


def test_prod_refuses_a_shared_hub_origin_in_one_line_without_the_opt_out():
    with pytest.raises(EnvError, match="ALLOW_SHARED_HUB_ORIGIN=true") as refused:
        topology.from_env(Env({**PROD_HUB, "USER_SUBDOMAINS": "false"}))
    assert "\n" not in str(refused.value)
    with pytest.raises(HubConfigError, match="ALLOW_SHARED_HUB_ORIGIN"):
        configured(**PROD_SECRETS, APP_PROFILE="prod", USER_SUBDOMAINS="false")
    opted_out = topology.from_env(Env({**PROD_HUB, "USER_SUBDOMAINS": "false", "ALLOW_SHARED_HUB_ORIGIN": "true"}))
    assert opted_out.shared_hub_origin
    # dev may share the origin (one person trying the system), with the same consequence for staff (below)
    assert topology.from_env(Env({"USER_SUBDOMAINS": "false"})).shared_hub_origin


def test_a_host_per_student_needs_a_hub_host_name_not_an_address():
    with pytest.raises(HubConfigError, match="needs a host name, not the address 192.0.2.7"):
        configured(BIND_IP="0.0.0.0", PUBLIC_URL="http://cfps.lan:8000", HUB_PUBLIC_URL="http://192.0.2.7:8000")
    shared = configured(HUB_PUBLIC_URL="http://192.0.2.7:8000", USER_SUBDOMAINS="false")
    assert shared.JupyterHub.subdomain_host == "http://192.0.2.7:8000"


def test_staff_get_a_role_of_ours_never_jupyterhubs_admin():
    c = configured()
    auth = c.PortalOAuthenticator
    assert auth.manage_roles is True and auth.admin_users == set()
    assert auth.staff_role["name"] == STAFF_ROLE_NAME and auth.staff_role["scopes"] == STAFF_SCOPES
    # What the admin role holds and staff must not: other users' auth state (their portal tokens), tokens for
    # anyone, making anyone an admin, the proxy, shutting the hub down.
    for scope in ("admin:users", "admin:auth_state", "tokens", "users", "admin:servers", "proxy", "shutdown"):
        assert scope not in auth.staff_role["scopes"], scope
    # Nobody is JupyterHub's admin: its members are set, exactly none, at every start.
    assert {"name": "admin", "users": []} in c.JupyterHub.load_roles
    assert all("users" not in role or role["name"] == "admin" for role in c.JupyterHub.load_roles)


def test_with_a_shared_hub_origin_staff_hold_nothing_on_the_hub():
    role = configured(USER_SUBDOMAINS="false").PortalOAuthenticator.staff_role
    assert role["name"] == STAFF_ROLE_NAME and role["scopes"] == []


def test_the_hubs_pages_may_not_be_framed():
    headers = configured().JupyterHub.tornado_settings["headers"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_the_hubs_and_the_servers_login_cookies_end_with_the_browser():
    # (JupyterHub passes cookie_options on to every server as JUPYTERHUB_COOKIE_OPTIONS)
    assert configured().JupyterHub.tornado_settings["cookie_options"] == {"expires_days": None}


def test_servers_ignore_configuration_from_the_students_home():
    assert configured().Spawner.disable_user_config is True


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"PUBLIC_URL": "http://localhost:8000"}, "different host names"),
        ({"PUBLIC_URL": "http://127.0.0.1:8000", "HUB_PUBLIC_URL": "http://127.0.0.1:9000"}, "cookies ignore ports"),
        (
            {"APP_DOMAIN_NAME": "cfps.example.edu", "HUB_DOMAIN_NAME": "example.edu", "USER_SUBDOMAINS": "true"},
            "under it",
        ),
        ({"APP_PROFILE": "prod", "PUBLIC_URL": "http://cfps.example.edu"}, "https only"),
        ({"PUBLIC_URL": "https://cfps.example.edu/portal"}, "without a path"),
    ],
    ids=["same-host", "same-host-other-port", "portal-under-user-subdomains", "prod-http", "path"],
)
def test_a_topology_that_would_mix_origins_is_refused_in_one_line(values, named):
    with pytest.raises(HubConfigError, match=named):
        configured(**values)


def test_an_unknown_profile_stops_the_hub_in_one_line():
    with pytest.raises(HubConfigError, match="APP_PROFILE must be one of dev, prod, not 'staging'"):
        configured(APP_PROFILE="staging")


def test_applying_twice_gives_the_same_config():
    env = AppConfig(Env({"PORT": "9000", "HUB_IDLE_TIMEOUT_SECONDS": "600", "SPAWNER": "local"}))
    once, twice = Config(), Config()
    apply_config(once, env)
    apply_config(twice, env)
    apply_config(twice, env)
    assert once == twice
    snapshot = copy.deepcopy(twice)
    apply_config(twice, env)
    assert twice == snapshot


def test_oauth_urls_browser_facing_authorize_and_server_side_token_and_userinfo():
    auth = configured(PORT="8123", PORTAL_PORT="8133").PortalOAuthenticator
    assert auth.authorize_url == "http://127.0.0.1:8123/o/authorize/"
    assert auth.token_url == "http://127.0.0.1:8133/o/token/"
    assert auth.userdata_url == "http://127.0.0.1:8133/o/userinfo/"
    assert auth.oauth_callback_url == "http://localhost:8123/jupyter/hub/oauth_callback"
    # The hub's logout ends at the portal's OpenID Connect end-session endpoint, then the portal's home.
    assert auth.logout_redirect_url == "http://127.0.0.1:8123/o/logout/"
    assert auth.post_logout_redirect_url == "http://127.0.0.1:8123/"


def test_public_url_follows_the_domain_in_prod():
    topo = topology.from_env(Env({"APP_PROFILE": "prod", "APP_DOMAIN_NAME": "cfps.example.edu.cn"}))
    assert topo.public_url == "https://cfps.example.edu.cn"
    assert topo.hub_callback_url == "https://hub.cfps.example.edu.cn/jupyter/hub/oauth_callback"
    other = topology.from_env(Env({"APP_DOMAIN_NAME": "cfps.example.edu.cn", "HUB_DOMAIN_NAME": "jupyter.x.edu"}))
    assert other.hub_public_url == "https://jupyter.x.edu/jupyter/"


def test_browser_facing_urls_follow_public_url():
    auth = configured(PUBLIC_URL="https://cfps.example.edu.cn/", HUB_PUBLIC_URL="https://hub.x.cn").PortalOAuthenticator
    assert auth.authorize_url == "https://cfps.example.edu.cn/o/authorize/"
    assert auth.oauth_callback_url == "https://hub.x.cn/jupyter/hub/oauth_callback"
    assert auth.token_url == "http://127.0.0.1:8010/o/token/"  # the hub still calls the portal on loopback


def test_login_rules():
    auth = configured().PortalOAuthenticator
    assert auth.username_claim == "preferred_username"
    assert auth.scope == ["openid", "profile", "email"]
    assert auth.allow_all is True and auth.enable_pkce is True
    assert auth.manage_groups is True and auth.auth_state_groups_key == "oauth_user.groups"
    assert auth.enable_auth_state is True and auth.refresh_pre_spawn is True
    assert auth.auth_refresh_age == 60
    assert configured().JupyterHub.authenticator_class == "hubconfig.authenticator.PortalOAuthenticator"


def test_client_secret_is_shared_with_the_portal_without_typing_it_twice(settings):
    # settings.HUB_CLIENT_SECRET came from the same Env.secret() at portal start-up (repo var/ or .env);
    # here both sides read a fresh var dir, so they must agree with each other.
    env = AppConfig(Env({}))
    secret = env.secrets.get("HUB_CLIENT_SECRET")
    assert configured().PortalOAuthenticator.client_secret == secret
    assert len(secret) >= 40


def test_auth_refresh_age_and_limits_from_env():
    c = configured(HUB_AUTH_REFRESH_SECONDS="15", HUB_ACTIVE_SERVER_LIMIT="150", HUB_CONCURRENT_SPAWN_LIMIT="8")
    assert c.PortalOAuthenticator.auth_refresh_age == 15
    assert (c.JupyterHub.active_server_limit, c.JupyterHub.concurrent_spawn_limit) == (150, 8)


def test_the_hub_checks_its_event_loop_twice_a_second_not_twenty_times():
    c = configured()
    assert c.PeriodicMetricsCollector.event_loop_interval_resolution == 0.5
    assert "event_loop_interval_log_threshold" not in c.PeriodicMetricsCollector  # still JupyterHub's 1 s


def test_idle_culler_runs_as_a_service_with_a_narrow_role():
    c = configured(HUB_IDLE_TIMEOUT_SECONDS="1800")
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert "--timeout=1800" in culler["command"]
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def test_idle_timeout_zero_turns_the_culler_off():
    c = configured(HUB_IDLE_TIMEOUT_SECONDS="0")
    assert [s["name"] for s in c.JupyterHub.services] == ["portal"]


def test_portal_service_may_start_stop_and_make_users_but_never_mint_tokens_or_act_as_them():
    from jupyterhub.scopes import _expand_scope

    c = configured()
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "portal")
    assert role["services"] == ["portal"]
    # Hub users are made through the narrow custom call (hubconfig/users.py), warm-ups included: no admin scope.
    assert not {s for s in role["scopes"] if s.startswith("admin")}
    assert "users:activity" in role["scopes"]  # a warm-up's culler grace
    held = set().union(*(_expand_scope(scope) for scope in role["scopes"] if not scope.startswith("custom:")))
    for never in ("tokens", "read:tokens", "access:servers", "admin:server_state", "admin-ui", "shutdown", "proxy"):
        assert never not in held, never


@pytest.mark.parametrize(
    ("profile", "proxy", "command_end"),
    [("dev", "", "pyproxy.py"), ("dev", "python", "pyproxy.py")],
)
def test_python_proxy_is_the_embedded_default(profile, proxy, command_end):
    command = configured(APP_PROFILE=profile, PROXY=proxy).ConfigurableHTTPProxy.command
    # The Python port from .venv, through the entry point that adds host routing.
    assert Path(command[0]).parent.name == "bin" and command[1].endswith(command_end)
    assert "node_modules" not in " ".join(command)


@pytest.mark.parametrize("proxy", ["python", "node"])
def test_the_proxy_marks_what_it_forwards_to_the_portal_and_nothing_else_with_the_proxy_secret(proxy):
    if proxy == "node" and not (BASE_DIR / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        pytest.skip("PROXY=node needs npm ci")
    command = configured(
        PROXY=proxy, PROXY_SECRET="proxy-secret-for-tests-0123456789", PORTAL_PORT="8110"
    ).ConfigurableHTTPProxy.command
    assert command[-2:] == [
        "--cfps-portal-target=http://127.0.0.1:8110",
        "--cfps-portal-header=X-Cfps-Proxy:proxy-secret-for-tests-0123456789",
    ]
    # Not configurable-http-proxy's own --custom-header, which goes with every route (students' servers too).
    assert "--custom-header" not in command


def test_node_proxy_comes_from_the_project_not_a_global_install():
    proxy = BASE_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if proxy.exists():
        command = configured(PROXY="node").ConfigurableHTTPProxy.command
        assert command[1:4] == ["--import", (BASE_DIR / "hubconfig" / "nodeproxy.mjs").as_uri(), str(proxy)]
    else:
        with pytest.raises(HubConfigError, match="npm ci"):
            configured(PROXY="node")


def test_unknown_proxy_is_refused_in_one_line():
    with pytest.raises(HubConfigError, match="PROXY must be one of python, node"):
        configured(PROXY="nginx")


def test_local_spawner_homes_live_under_var(tmp_path):
    c = configured()
    assert c.JupyterHub.spawner_class == "hubconfig.spawners.LocalHomeSpawner"
    assert c.LocalHomeSpawner.home_dir_template == str(tmp_path / "var" / "users" / "{username}")
    assert c.Spawner.default_url == "/lab"


PROD_SECRETS = {
    # Random-looking: prod refuses placeholders such as "x" * 64 (portal/config/placeholders.py).
    "HUB_CLIENT_SECRET": "sCAx8-Zzf-vOKjrVUsZQgnLbNXDsBoWgxCVLh-jE3bHdF8On-Y1AJ2q83a4RBnWn",
    "HUB_API_TOKEN": "FJV9TmSpHzhrZb4dh5a3EwBalG3OoBZges85Qb3EjGF9wToxmluL6wPdPh0LXCCh",
    "CONFIGPROXY_AUTH_TOKEN": "vkVOI8k84icqF_iMf3uAqepPglUDOKD0mXwTr38YYpZ3myhLC62MfMczsS7O-xqg",
    "JUPYTERHUB_CRYPT_KEY": "c8123333b6d199cbe1175b78641bf8a63474a6d1bcce468271b9b4b290051d27",
    "PROXY_SECRET": "Lq0tC8mW3zYpR5xN7vB2kJ9hF4dS6aG1eU3iO8rT2yP5lK7xM0nB4vC9zQ1wE6tY",
    "APP_DOMAIN_NAME": "cfps.example.edu.cn",
    "PROXY": "python",
    "SPAWNER": "local",
}


def test_prod_refuses_the_local_spawner():
    with pytest.raises(HubConfigError, match="isolation"):
        configured(APP_PROFILE="prod", **PROD_SECRETS)


@pytest.mark.parametrize("missing", ["HUB_CLIENT_SECRET", "HUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN", "PROXY_SECRET"])
def test_prod_never_generates_secrets(missing):
    values = {**PROD_SECRETS, "APP_PROFILE": "prod", missing: ""}
    with pytest.raises(HubConfigError, match=missing):
        configured(**values)


def test_dev_reads_its_secrets_but_never_generates_one(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CFPS_VAR_DIR", str(empty))
    with pytest.raises(HubConfigError) as missing:
        configured()
    message = str(missing.value)
    assert "\n" not in message and str(empty / "secrets") in message and PREPARE_HINT in message, message
    with pytest.raises(HubConfigError, match="JUPYTERHUB_CRYPT_KEY is missing"):
        process_environment(AppConfig(Env({})))
    assert list(empty.iterdir()) == []


def test_crypt_key_is_generated_once_and_kept(tmp_path):
    first = process_environment(AppConfig(Env({})))["JUPYTERHUB_CRYPT_KEY"]
    second = process_environment(AppConfig(Env({})))["JUPYTERHUB_CRYPT_KEY"]
    assert first == second and len(bytes.fromhex(first)) == 32
    key_file = tmp_path / "var" / "secrets" / "JUPYTERHUB_CRYPT_KEY"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_local_spawner_prints_a_no_isolation_warning():
    from hubconfig.config import startup_warnings

    assert any("isolation" in line for line in startup_warnings(AppConfig(Env({"SPAWNER": "local"}))))


def test_jupyterlab_opens_in_chinese_without_fetching_news():
    import json

    from hubconfig.config import LAB_SETTINGS_DIR

    assert configured().Spawner.args == [
        f"--LabApp.app_settings_dir={LAB_SETTINGS_DIR}",
        "--LabApp.extension_manager=readonly",  # LAB_CONFIG: what the image has in its Jupyter configuration
    ]
    overrides = json.loads((LAB_SETTINGS_DIR / "overrides.json").read_text())
    assert overrides["@jupyterlab/translation-extension:plugin"]["locale"] == "zh_CN"
    assert overrides["@jupyterlab/apputils-extension:notification"] == {"checkForUpdates": False, "fetchNews": "false"}


def test_hub_links_and_cookie_security_follow_public_url():
    assert configured(APP_DOMAIN_NAME="cfps.example.edu.cn").JupyterHub.public_url == (
        "https://hub.cfps.example.edu.cn/jupyter/"
    )
    assert configured().JupyterHub.public_url == "http://localhost:8000/jupyter/"


def test_local_servers_stop_with_the_hub_but_containers_outlive_it():
    assert configured(SPAWNER="local").JupyterHub.cleanup_servers is True


def test_the_hubs_request_log_masks_the_proxy_secret_when_it_writes_out_a_failed_requests_headers(caplog):
    """JupyterHub logs every header of a 5xx request (masking only Authorization and Cookie); a real tornado
    server with the hub's log function, a failing handler, and our proxy's header."""
    import logging

    import httpx
    import tornado.web

    from hubconfig.config import log_request

    class Failing(tornado.web.RequestHandler):
        def get(self):
            raise RuntimeError("boom")

    async def serve_and_ask():
        app = tornado.web.Application([(r"/", Failing)], log_function=log_request)
        server = app.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"http://127.0.0.1:{port}/", headers={"X-Cfps-Proxy": "proxy-secret-42"})
        server.stop()
        return response.status_code

    with caplog.at_level(logging.INFO):
        status = run_async(serve_and_ask, timeout=30)
    assert status == 500, status
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "X-Cfps-Proxy" in logged and "[secret]" in logged, logged  # the headers were written out...
    assert "proxy-secret-42" not in logged  # ...without the secret
