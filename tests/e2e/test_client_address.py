"""The address the portal's limits count cannot be chosen by the client (issue 10.4), through the real stack:
each proxy (the `stack` fixture runs the Python and the Node one) and straight at the portal's own port.

A guesser rotates X-Real-IP, X-Forwarded-For and a guessed X-Cfps-Proxy on every wrong invite code; the
wrong-code limit (SIGNUP_CODE_FAILURE_LIMIT, 20 per 10 minutes on the shipped defaults) still bites at the
21st, and a neighbour on another address is not affected (so the portal counts clients, not the proxy).

Clients connect from their own loopback addresses (127.0.0.x, never 127.0.0.1, which the other e2e tests
use), so a locked address here cannot lock anyone else out.

The proxy's secret header (X-Cfps-Proxy: PROXY_SECRET) goes to the portal only: a student's server that
prints the headers it is sent never sees it (issue 20.6), through either proxy.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from http import HTTPStatus

import httpx

from tests.e2e import flows
from tests.live import HUB_HOST, PortalProcess, secret_file

WRONG_CODE_LIMIT = 20  # the shipped default, SIGNUP_CODE_FAILURE_LIMIT=20/10m
_addresses = itertools.count(20)


def loopback_client(base_url: str) -> httpx.Client:
    """A 'browser' connecting from a loopback address of its own (127.0.0.20, .21, ...)."""
    address = f"127.0.0.{next(_addresses)}"
    return httpx.Client(
        base_url=base_url,
        transport=httpx.HTTPTransport(local_address=address),
        trust_env=False,
        follow_redirects=True,
        timeout=60,
        headers={"Accept-Language": "en"},
    )


def wrong_code_signup(stack, client: httpx.Client, n: int, **headers: str) -> int:
    client.headers.update(headers)  # on the form's GET too, as a forging client would send them
    page = client.get("/accounts/signup/")
    data = {"username": f"guesser-{n}", "password1": flows.PASSWORD, "password2": flows.PASSWORD}
    return flows.post_form(stack, client, page, {**data, "invite_code": f"GUESS-{n:04d}"}).status_code


def forged(n: int) -> dict[str, str]:
    """Different forwarding headers on every request, and a guessed proxy secret."""
    return {
        "X-Real-IP": f"198.51.100.{n % 250 + 1}",
        "X-Forwarded-For": f"203.0.113.{n % 250 + 1}",
        "X-Cfps-Proxy": f"guessed-secret-{n}",
    }


def assert_the_wrong_code_limit_bites(stack, base_url: str) -> None:
    with loopback_client(base_url) as guesser, loopback_client(base_url) as neighbour:
        codes = [wrong_code_signup(stack, guesser, n, **forged(n)) for n in range(WRONG_CODE_LIMIT + 3)]
        expected = [HTTPStatus.OK] * WRONG_CODE_LIMIT + [HTTPStatus.TOO_MANY_REQUESTS] * 3
        assert codes == expected, flows.explain(stack, f"rotating headers from one address at {base_url}: {codes}")
        assert wrong_code_signup(stack, neighbour, 999) == HTTPStatus.OK, flows.explain(
            stack, "a neighbour on another address was refused too: the portal counted the proxy, not the client"
        )


def test_rotating_forwarding_headers_through_the_public_port_does_not_reset_the_wrong_code_limit(stack):
    assert_the_wrong_code_limit_bites(stack, stack.url("/").rstrip("/"))


def test_rotating_forwarding_headers_straight_at_the_portals_port_does_not_reset_the_wrong_code_limit(stack):
    assert_the_wrong_code_limit_bites(stack, f"http://127.0.0.1:{stack.portal.port}")


def test_a_local_process_forging_headers_at_the_portals_port_from_127_0_0_1_is_still_counted(tmp_path):
    """A notebook's process reaches the portal from 127.0.0.1, the address our own proxies use: that alone must
    not make its forwarding headers believable. (Its own portal, so the locked 127.0.0.1 bothers no other test.)"""
    with PortalProcess(tmp_path) as portal:
        with httpx.Client(base_url=portal.base_url, trust_env=False, follow_redirects=True, timeout=60) as local:
            codes = [wrong_code_signup(portal, local, n, **forged(n)) for n in range(WRONG_CODE_LIMIT + 1)]
    assert codes == [HTTPStatus.OK] * WRONG_CODE_LIMIT + [HTTPStatus.TOO_MANY_REQUESTS], f"{codes}\n{portal.log_tail()}"


# --- the proxy's secret goes to the portal, never to a student's server -----------------------------------
class _HeaderPrinter(http.server.BaseHTTPRequestHandler):
    """A student's server that answers every request with the headers it was sent, as JSON."""

    def do_GET(self):
        body = json.dumps([[name, value] for name, value in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_students_server_never_sees_the_proxys_secret_header(stack):
    secret = stack.env.get("PROXY_SECRET") or secret_file(stack.env, "PROXY_SECRET")
    username = flows.unique_username("headers")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeaderPrinter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Registered as the hub registers a student's running server: that user's route on their own host.
    route = f"{username}.{HUB_HOST}/jupyter/user/{username}/"
    api = f"http://127.0.0.1:{stack.env['PROXY_API_PORT']}/api/routes/{route}"
    token = {"Authorization": f"token {secret_file(stack.env, 'CONFIGPROXY_AUTH_TOKEN')}"}
    try:
        added = httpx.post(
            api, json={"target": f"http://127.0.0.1:{server.server_port}"}, headers=token, trust_env=False
        )
        assert added.status_code == HTTPStatus.CREATED, added.text
        with flows.new_client(stack) as browser:
            for sent in ({}, {"X-Cfps-Proxy": "guessed-secret"}):
                answer = browser.get(stack.user_url(username, "api/status"), headers=sent)
                assert answer.status_code == HTTPStatus.OK, flows.explain(stack, answer.text[:500])
                seen = answer.json()
                assert not [name for name, value in seen if secret in value], flows.explain(
                    stack, f"the student's server was sent the proxy's secret: {seen}"
                )
                assert "x-cfps-proxy" not in {name.lower() for name, _ in seen}, seen
    finally:
        httpx.delete(api, headers=token, trust_env=False)
        server.shutdown()
        server.server_close()
