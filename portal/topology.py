"""Where every part listens and how they find each other, derived once from `.env`.

Both the portal settings and `hubconfig` read this, so a URL or port is never typed twice.

    browser ──▶ proxy :PORT ──┬─ /          ──▶ portal (gunicorn) 127.0.0.1:PORTAL_PORT
                              └─ /jupyter/  ──▶ hub 127.0.0.1:HUB_PORT, and the users' servers

- PUBLIC_URL is what browsers see (default http://127.0.0.1:PORT; in production https://APP_DOMAIN_NAME,
  with Nginx adding TLS in front of PORT). Browser-facing OAuth URLs use it.
- The hub talks to the portal, and the portal to the hub's API, directly on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.envfile import Env

HUB_PREFIX = "/jupyter/"
HUB_CLIENT_ID_DEFAULT = "jupyterhub"


@dataclass(frozen=True)
class Topology:
    public_url: str
    port: int
    bind_ip: str
    portal_port: int
    hub_port: int
    proxy_api_port: int
    hub_client_id: str

    @property
    def portal_internal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal_port}"

    @property
    def hub_public_url(self) -> str:
        return self.public_url + HUB_PREFIX

    @property
    def hub_callback_url(self) -> str:
        return f"{self.public_url}{HUB_PREFIX}hub/oauth_callback"

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}{HUB_PREFIX}hub/api"

    @property
    def proxy_api_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_api_port}"


def from_env(env: Env) -> Topology:
    port = env.int("PORT", 8000)
    domain = env.get("APP_DOMAIN_NAME")
    default_public = f"https://{domain}" if domain and env.get("APP_PROFILE") == "prod" else f"http://127.0.0.1:{port}"
    return Topology(
        public_url=env.get("PUBLIC_URL", default_public).rstrip("/"),
        port=port,
        bind_ip=env.get("BIND_IP", "127.0.0.1"),
        portal_port=env.int("PORTAL_PORT", 8010),
        hub_port=env.int("HUB_PORT", 8081),
        proxy_api_port=env.int("PROXY_API_PORT", 8001),
        hub_client_id=env.get("HUB_CLIENT_ID", HUB_CLIENT_ID_DEFAULT),
    )
