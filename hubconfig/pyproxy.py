"""PROXY=python: the pure-Python configurable-http-proxy, with the host-based routing the hub relies on.

JupyterHub routes by host name (portal/config/topology.py: the portal's host reaches only the portal, the hub's
host the hub and the students' servers) and starts its proxy with `--host-routing`, as the Node proxy
implements it: the route for a request is looked up under `/<host name without port><path>`. The Python
port (0.4.0) stores host routes, but looks requests up by path alone, so no host route would ever match,
and its CLI wants a value after the flag. This entry point runs the same proxy with a handler that looks
routes up by host, and passes the flag in the form its CLI accepts.

The portal's secret header (PROXY_SECRET, accounts/throttle.py) goes with the requests forwarded to the
portal's own address and no others: configurable-http-proxy's `--custom-header` would hand it to every
student's server too. Any copy a client sent is dropped from every request (`PortalHeader`; the Node proxy
does the same in hubconfig/nodeproxy.mjs).

    python hubconfig/pyproxy.py [configurable-http-proxy's own options]
        [--cfps-portal-target=http://127.0.0.1:8010 --cfps-portal-header=X-Cfps-Proxy:SECRET]
"""

from __future__ import annotations

import socket
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from configurable_http_proxy import cli, configproxy, handlers
from tornado.httpclient import AsyncHTTPClient
from tornado.netutil import DefaultLoopResolver, Resolver, is_valid_ip
from tornado.web import Application

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: run as a script by the hub
from portal.config import logscrub  # noqa: E402

# Our options (proxy_command in hubconfig/config.py writes them), taken off the command line before the
# proxy's own CLI reads it; the Node proxy's preload (hubconfig/nodeproxy.mjs) reads the same two.
PORTAL_TARGET_OPTION = "--cfps-portal-target="
PORTAL_HEADER_OPTION = "--cfps-portal-header="


@dataclass(frozen=True)
class PortalHeader:
    """`name: value` on what goes to `target` (the portal's address) only; never a client's copy anywhere."""

    target: str = ""
    name: str = ""
    value: str = ""

    def apply(self, headers: dict, target: str) -> None:
        for key in [key for key in headers if key.lower() == self.name.lower()]:
            del headers[key]
        if self.name and self.target and target.rstrip("/") == self.target:
            headers[self.name] = self.value


def take_portal_header(args: list[str]) -> tuple[PortalHeader, list[str]]:
    """Our two options out of `args`: (the portal header, the proxy's own arguments)."""
    target, header, rest = "", "", []
    for arg in args:
        if arg.startswith(PORTAL_TARGET_OPTION):
            target = arg.removeprefix(PORTAL_TARGET_OPTION).rstrip("/")
        elif arg.startswith(PORTAL_HEADER_OPTION):
            header = arg.removeprefix(PORTAL_HEADER_OPTION)
        else:
            rest.append(arg)
    name, _, value = header.partition(":")
    return PortalHeader(target, name.strip(), value.strip()), rest


class HostRoutingProxyHandler(handlers.ProxyHandler):
    async def get_target_url(self, path):
        if not self.proxy.host_routing:
            return await super().get_target_url(path)
        # Like the Node proxy: the Host header without its port; the target gets the path alone.
        # Tornado hands over the path without its leading "/" (the handler's pattern is "/(.*)").
        self.target = self.proxy.target_for_req(self.request.host_name.lower(), "/" + path)
        if self.target is None:
            await self.handle_proxy_error(404, err=None)
            return None
        target = urllib.parse.urlparse(self.target["target"])
        query = "&".join(part for part in (target.query, self.request.query) if part)
        full_path = target.path.rstrip("/") + "/" + urllib.parse.quote(path).lstrip("/")
        return target._replace(path=full_path, query=query).geturl()

    def _get_proxy_request(self, url):
        request = super()._get_proxy_request(url)
        self.proxy.portal_header.apply(request.headers, self.target["target"] if self.target else "")
        return request


class HostRoutingProxy(configproxy.PythonProxy):
    portal_header = PortalHeader()  # set by main() from the command line

    def __init__(self, options):
        super().__init__(options)
        # Its request log line shows the query string: masked (no ?access_token= or ?code= in hub.log).
        self.proxy_app = Application(
            [(r"/(.*)", HostRoutingProxyHandler, {"proxy": self})], log_function=logscrub.log_tornado_request
        )


class LiteralResolver(DefaultLoopResolver):
    """Every target is an address (127.0.0.1:<port>, a container's IP): answer those at once. Tornado's default
    hands each name, even an address, to getaddrinfo in a thread pool: a fifth of the proxy's CPU per request."""

    async def resolve(self, host, port, family=socket.AF_UNSPEC):
        if is_valid_ip(host):
            if ":" in host:
                return [(socket.AF_INET6, (host, port, 0, 0))]
            return [(socket.AF_INET, (host, port))]
        return await super().resolve(host, port, family)


# Tornado's HTTP client forwards at most 10 requests at once by default and queues the rest, so 20 students
# logging in (each waiting half a second on a password check) made every other page wait behind them.
UPSTREAM_REQUESTS_AT_ONCE = 1000
# The port buffers each answer whole and, without --proxy-timeout, gives up on it after Tornado's default 20 s:
# the spawn page's progress stream lasts as long as the start (30 s on a busy class day), so it got a 503 and
# the student's page never moved on to JupyterLab. The Node proxy has no such limit either.
DEFAULT_PROXY_TIMEOUT_MS = 10 * 60 * 1000


def main() -> int:
    AsyncHTTPClient.configure(None, max_clients=UPSTREAM_REQUESTS_AT_ONCE)
    Resolver.configure(LiteralResolver)
    cli.PythonProxy = HostRoutingProxy  # the CLI builds its proxy from this name
    HostRoutingProxy.portal_header, args = take_portal_header(sys.argv[1:])
    # The Python CLI declares --host-routing as an option that takes a value; JupyterHub passes it as the
    # Node proxy's bare flag.
    args = ["--host-routing=1" if a == "--host-routing" else a for a in args]
    if not any(a.startswith("--proxy-timeout") for a in args):
        args.append(f"--proxy-timeout={DEFAULT_PROXY_TIMEOUT_MS}")
    sys.argv = ["configurable-http-proxy", *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
