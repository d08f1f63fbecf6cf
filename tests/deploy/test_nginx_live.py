"""A real Nginx, configured by `manage.py gen_nginx`, in front of the whole running system (tests/live.py
`Stack`, with the Node.js proxy as in prod): the login loop, a terminal's websocket, the client's address
as the portal's rate limits see it, the static-file cache, and with --tls the redirect and HSTS.

PUBLIC_URL and HUB_PUBLIC_URL are Nginx's two host names (127.0.0.1 for the portal, localhost for the hub),
so every redirect of the OAuth dance goes through Nginx, as on a server. Nginx listens on 127.0.0.1 only
(free ports); the clients connect from other loopback addresses (127.0.0.2, ...) so that the portal can tell
them apart.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from urllib.parse import urlsplit

import httpx
import pytest
import websocket  # websocket-client

from tests.deploy.conftest import BehindNginx, Nginx, self_signed_certificate
from tests.e2e import flows
from tests.e2e.conftest import STACK_ENV, require_node_proxy
from tests.live import Stack, free_port

logging.getLogger("httpx").setLevel(logging.WARNING)

LOGIN_IP_LIMIT = 5  # failures per hour (a window starts at the first one), so the test needs only a handful


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """Stack + Nginx (http) + Nginx (--tls), all on loopback; yields (behind_http, tls_nginx, tls_ports)."""
    require_node_proxy()
    tmp = tmp_path_factory.mktemp("deploy-live")
    http_port = free_port()
    env = {
        **STACK_ENV,
        "PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "HUB_PUBLIC_URL": f"http://localhost:{http_port}",
        "APP_DOMAIN_NAME": "127.0.0.1",
        "HUB_DOMAIN_NAME": "localhost",
        "LOGIN_IP_FAILURE_LIMIT": f"{LOGIN_IP_LIMIT}/h",
    }
    with Stack(tmp / "stack", proxy="node", extra_env=env) as stack:
        site = tmp / "http" / "cfps.conf"
        site.parent.mkdir()
        stack.manage(
            "gen_nginx",
            "--listen",
            "127.0.0.1",
            "--http-port",
            str(http_port),
            "--cache-dir",
            str(tmp / "http" / "cache"),
            "--acme-webroot",
            str(tmp / "acme"),
            "--access-log",
            str(tmp / "http" / "cfps-access.log"),
            "--output",
            str(site),
        )
        cert, key = self_signed_certificate(tmp / "tls" / "live", "127.0.0.1", "localhost", "*.localhost")
        tls_ports = (free_port(), free_port())
        tls_site = tmp / "tls" / "cfps.conf"
        stack.manage(
            "gen_nginx",
            "--tls",
            "--listen",
            "127.0.0.1",
            "--http-port",
            str(tls_ports[0]),
            "--https-port",
            str(tls_ports[1]),
            "--certificate",
            str(cert),
            "--certificate-key",
            str(key),
            "--cache-dir",
            str(tmp / "tls" / "cache"),
            "--acme-webroot",
            str(tmp / "acme"),
            "--access-log",
            str(tmp / "tls" / "cfps-access.log"),
            "--resolver",
            "127.0.0.1",
            "--output",
            str(tls_site),
        )
        plain = Nginx(site, tmp / "http", [http_port]).start()
        try:
            tls = Nginx(tls_site, tmp / "tls", list(tls_ports)).start()
            try:
                yield BehindNginx(stack, plain, http_port), tls, tls_ports, cert
            finally:
                tls.stop()
        finally:
            plain.stop()


@pytest.fixture(scope="module")
def site(system):
    return system[0]


def client_from(site, address: str = "127.0.0.1", **headers: str) -> httpx.Client:
    """A 'browser' on the public origins (Nginx), connecting from the loopback `address`."""
    return flows.StackClient(
        site,
        local_address=address,
        trust_env=False,
        follow_redirects=True,
        timeout=60,
        headers={"Accept-Language": "en", **headers},
    )


def test_login_loop_through_nginx_lands_in_a_running_server(site):
    username = flows.unique_username("nginx")
    with client_from(site, "127.0.0.4") as other:
        flows.signup(site, other, username)
    with client_from(site, "127.0.0.5") as client:
        first = client.get("/jupyter/")
        visited = flows.urls_of(first)
        assert flows.path_of(first.url) == "/accounts/login/", site.log_tail()
        # The hub sends the browser to the portal's login page, with its authorization request as `next`.
        logins = [url for url in visited if flows.path_of(url) == "/accounts/login/"]
        assert logins and logins[0].startswith(site.url("/accounts/login/")), (
            f"the hub did not send the browser to the portal through Nginx: {visited}"
        )
        assert flows.query_of(logins[0]).get("next", "").startswith("/o/authorize/?"), visited
        after = flows.portal_login(site, client, username, page=first)
        visited = flows.wait_for_lab(site, client, username, after)
        origins = (site.base_url + "/", site.hub_base_url + "/", site.user_url(username))
        assert all(url.startswith(origins) for url in visited), f"left Nginx's origins: {visited}"
        assert visited[-1].startswith(site.user_url(username, "lab")), visited  # the student's own host
        status = client.get(f"/jupyter/user/{username}/api/status", headers={"Accept": "application/json"})
        assert status.status_code == 200 and "started" in status.json(), site.log_tail()


def test_terminal_websocket_through_nginx_runs_a_command(site):
    username = flows.unique_username("ws")
    with client_from(site, "127.0.0.6") as client:
        flows.signup(site, client, username)
        flows.wait_for_lab(site, client, username, client.get("/jupyter/"))
        prefix = f"/jupyter/user/{username}"
        xsrf = client.cookies.get("_xsrf", path=f"{prefix}/")
        assert xsrf, f"no _xsrf cookie for {prefix}/: {list(client.cookies.jar)}"
        created = client.post(f"{prefix}/api/terminals", headers={"X-XSRFToken": xsrf})
        assert created.status_code == 200, f"{created.status_code} {created.text[:500]}\n{site.log_tail()}"
        name = created.json()["name"]
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar if prefix.startswith(c.path.rstrip("/")))
        # To the student's own host (`<name>.localhost`, which only browsers resolve themselves): on 127.0.0.1
        # with that name as Host, as a browser sends it.
        origin = site.user_url(username).split("/jupyter/", 1)[0]
        path = f"{prefix}/terminals/websocket/{name}?_xsrf={xsrf}"
        ws_url = f"ws://127.0.0.1:{urlsplit(origin).port}{path}"
        ws = websocket.create_connection(ws_url, cookie=cookie, origin=origin, host=urlsplit(origin).netloc, timeout=20)
        try:
            ws.send(json.dumps(["stdin", "echo cfps-$((6 * 7))\r"]))
            output, deadline = "", time.monotonic() + 20
            while "cfps-42" not in output and time.monotonic() < deadline:
                message = json.loads(ws.recv())
                if message[0] == "stdout":
                    output += message[1]
        finally:
            ws.close()
        assert "cfps-42" in output, f"the terminal's output through Nginx was {output!r}"
        client.delete(f"{prefix}/api/terminals/{name}", headers={"X-XSRFToken": xsrf})


def login_attempt(client: httpx.Client, n: int, **headers: str) -> int:
    page = client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={
            "csrfmiddlewaretoken": flows.csrf_token(client, page.text),
            "username": f"nobody-{n}",  # a new name each time: only the per-address limit counts
            "password": "wrong-password-123",
        },
        headers={"Referer": str(page.url), **headers},
    )
    return response.status_code


def test_portal_limits_the_real_client_address_seen_through_nginx_and_the_proxy(site):
    with client_from(site, "127.0.0.2") as guesser, client_from(site, "127.0.0.3") as neighbour:
        codes = [login_attempt(guesser, n) for n in range(LOGIN_IP_LIMIT)]
        assert codes == [200] * LOGIN_IP_LIMIT, codes  # wrong password: the form again
        assert login_attempt(guesser, 99) == 429
        # Forged headers do not give the guesser a new address: Nginx appends the real peer after them.
        forged = {"X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.7"}
        assert login_attempt(guesser, 100, **forged) == 429
        # Another address still gets in: the portal did not count every request as Nginx's 127.0.0.1.
        assert login_attempt(neighbour, 1) == 200


def test_hashed_static_files_are_cached_by_nginx_for_a_long_time(site):
    with client_from(site) as client:
        page = client.get("/accounts/login/")
        match = re.search(r'href="(/static/css/portal\.[0-9a-f]{12}\.css)"', page.text)
        assert match, f"no hashed stylesheet in the page: {page.text[:800]}"
        first, second = client.get(match.group(1)), client.get(match.group(1))
    assert first.status_code == second.status_code == 200
    assert "immutable" in first.headers["cache-control"] and "max-age=315360000" in first.headers["cache-control"]
    assert second.headers.get("x-cache-status") == "HIT", dict(second.headers)


def test_tls_nginx_redirects_http_to_https_and_sends_one_hsts_header_and_one_of_each_security_header(system):
    site, tls, (http_port, https_port), cert = system
    with httpx.Client(trust_env=False, timeout=30, verify=ssl.create_default_context(cafile=str(cert))) as client:
        redirect = client.get(f"http://127.0.0.1:{http_port}/accounts/login/?next=/x", follow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"https://127.0.0.1:{https_port}/accounts/login/?next=/x"
        portal = client.get(f"https://127.0.0.1:{https_port}/accounts/login/")
        hub = client.get(f"https://localhost:{https_port}/jupyter/hub/api")
        hub_page = client.get(f"https://localhost:{https_port}/jupyter/hub/login")
    assert portal.status_code == 200 and hub.status_code == 200, tls.error_log()
    assert portal.headers.get_list("strict-transport-security") == ["max-age=31536000"]
    for response in (hub, hub_page):  # students' servers are subdomains of the hub's name
        assert response.headers.get_list("strict-transport-security") == ["max-age=31536000; includeSubDomains"]
    for response in (portal, hub, hub_page):
        assert response.http_version == "HTTP/1.1"  # httpx without h2; Nginx offers h2 to browsers
        # Where the app sends its own header, it is the only one (Nginx adds its own only where none came).
        for name in ("x-content-type-options", "referrer-policy", "permissions-policy"):
            assert len(response.headers.get_list(name)) == 1, (response.url, name, response.headers)
        assert response.headers["x-content-type-options"] == "nosniff"
    assert portal.headers.get_list("x-frame-options") == ["DENY"]  # Django's own
    # JupyterHub's pages decide their framing with their CSP's frame-ancestors: Nginx adds no X-Frame-Options.
    assert (
        "frame-ancestors" in hub_page.headers["content-security-policy"] and "x-frame-options" not in hub_page.headers
    )


def test_acme_challenges_are_served_over_plain_http_even_with_tls(system):
    site, tls, (http_port, _), _ = system
    webroot = site.stack.tmp_path.parent / "acme" / ".well-known" / "acme-challenge"
    webroot.mkdir(parents=True, exist_ok=True)
    (webroot / "token-123").write_text("token-123.thumbprint")
    with httpx.Client(trust_env=False, timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/token-123")
    assert response.status_code == 200 and response.text == "token-123.thumbprint"
