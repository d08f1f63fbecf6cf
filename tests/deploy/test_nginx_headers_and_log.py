"""What the generated Nginx site sends and logs by itself (issue 20.9, 20.10), with a real nginx on 127.0.0.1
in front of nothing: both upstreams are closed ports, so every proxied request gets Nginx's own 502 page,
and a missing ACME challenge its own 404. Those pages carry the security headers too (HSTS with --tls,
includeSubDomains on the hub's name), and the access log keeps no query string and no one-time link's token.
(test_nginx_live.py checks the same headers on the apps' own answers, through the whole running system.)"""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.deploy.conftest import Nginx, manage, self_signed_certificate
from tests.live import free_port

PORTAL, HUB = "127.0.0.1", "localhost"
# Secrets that travel in URLs: a set-password link's and a reset link's token, an authorization code (in the
# request and in a Referer), a PKCE challenge and state, a hub token in a query string.
SECRETS = ("SETPASSWORDTOKEN", "RESETTOKEN", "AUTHCODE", "REFERERCODE", "PKCECHALLENGE", "STATEVALUE", "HUBTOKEN")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Nginx with the plain site on one port and the --tls site on two, upstreams closed; yields
    (http_port, (tls_http_port, https_port), cert, {name: access log})."""
    tmp = tmp_path_factory.mktemp("nginx-alone")
    http_port, tls_ports = free_port(), (free_port(), free_port())
    env = {
        "CFPS_VAR_DIR": str(tmp / "var"),
        "APP_DOMAIN_NAME": PORTAL,
        "HUB_DOMAIN_NAME": HUB,
        "PUBLIC_URL": f"http://{PORTAL}:{http_port}",
        "HUB_PUBLIC_URL": f"http://{HUB}:{http_port}",
        "PORT": str(free_port()),  # nothing listens on either: Nginx answers 502 itself
        "PORTAL_PORT": str(free_port()),
    }
    cert, key = self_signed_certificate(tmp / "cert", PORTAL, HUB, f"*.{HUB}")
    logs, nginxes = {}, []
    for name, args, ports in (
        ("http", ["--http-port", str(http_port)], [http_port]),
        ("tls", ["--tls", "--http-port", str(tls_ports[0]), "--https-port", str(tls_ports[1]),
                 "--certificate", str(cert), "--certificate-key", str(key)], list(tls_ports)),
    ):  # fmt: skip
        folder = tmp / name
        folder.mkdir()
        logs[name] = folder / "cfps-access.log"
        manage(
            "gen_nginx", "--listen", "127.0.0.1", "--cache-dir", str(folder / "cache"), "--acme-webroot",
            str(tmp / "acme"), "--access-log", str(logs[name]), "--resolver", "127.0.0.1", *args,
            "--output", str(folder / "cfps.conf"), env=env,
        )  # fmt: skip
        nginxes.append(Nginx(folder / "cfps.conf", folder, ports).start())
    try:
        yield http_port, tls_ports, cert, logs
    finally:
        for nginx in nginxes:
            nginx.stop()


def client(cert=None) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(cert)) if cert else True
    return httpx.Client(trust_env=False, timeout=30, follow_redirects=False, verify=verify)


def one(response: httpx.Response, name: str) -> str:
    values = response.headers.get_list(name)
    assert len(values) == 1, f"{name}: {values} on {response.request.url} ({response.status_code})"
    return values[0]


def assert_security_headers(response: httpx.Response, frame: str, hsts: str | None) -> None:
    assert one(response, "X-Content-Type-Options") == "nosniff"
    assert one(response, "Referrer-Policy") == "same-origin"
    policy = one(response, "Permissions-Policy")
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in policy, policy
    assert one(response, "X-Frame-Options") == frame
    if hsts is None:
        assert "Strict-Transport-Security" not in response.headers
    else:
        assert one(response, "Strict-Transport-Security") == hsts


def requests_with_secrets(base_portal: str, base_hub: str) -> list[tuple[str, dict]]:
    return [
        (f"{base_portal}/accounts/set-password/MTI/SETPASSWORDTOKEN/", {}),
        (f"{base_portal}/accounts/reset/MTI/RESETTOKEN/", {"Referer": f"{base_portal}/accounts/reset/MTI/RESETTOKEN/"}),
        (f"{base_portal}/o/authorize/?client_id=jupyterhub&code_challenge=PKCECHALLENGE&state=STATEVALUE", {}),
        (f"{base_hub}/jupyter/hub/oauth_callback?code=AUTHCODE&state=STATEVALUE", {}),
        (f"{base_hub}/jupyter/hub/home", {"Referer": f"{base_hub}/jupyter/hub/oauth_callback?code=REFERERCODE"}),
        (f"{base_hub}/jupyter/user/someone/api/contents?token=HUBTOKEN", {}),
    ]


def test_nginx_s_own_error_pages_carry_the_security_headers_on_both_names(sites):
    http_port, _, _, _ = sites
    with client() as browser:
        for host, frame in ((PORTAL, "DENY"), (HUB, "SAMEORIGIN")):
            bad_gateway = browser.get(f"http://{host}:{http_port}/accounts/login/")
            missing = browser.get(f"http://{host}:{http_port}/.well-known/acme-challenge/nothing-here")
            assert (bad_gateway.status_code, missing.status_code) == (502, 404)
            for response in (bad_gateway, missing):
                assert_security_headers(response, frame, hsts=None)  # no HSTS over plain http


def test_with_tls_every_answer_has_hsts_and_the_hubs_name_includes_its_subdomains(sites):
    _, (tls_http_port, https_port), cert, _ = sites
    with client(cert) as browser:
        portal = browser.get(f"https://{PORTAL}:{https_port}/accounts/login/")
        hub = browser.get(f"https://{HUB}:{https_port}/jupyter/hub/home")
        static = browser.get(f"https://{PORTAL}:{https_port}/static/missing.css")  # its own add_header lines
        redirect = browser.get(f"http://{HUB}:{tls_http_port}/jupyter/hub/home")
    assert (portal.status_code, hub.status_code, static.status_code, redirect.status_code) == (502, 502, 502, 301)
    assert_security_headers(portal, "DENY", hsts="max-age=31536000")
    assert_security_headers(static, "DENY", hsts="max-age=31536000")
    assert_security_headers(hub, "SAMEORIGIN", hsts="max-age=31536000; includeSubDomains")
    assert_security_headers(redirect, "DENY", hsts=None)


@pytest.mark.parametrize("site", ["http", "tls"])
def test_the_access_log_keeps_no_query_string_and_no_one_time_link_token(sites, site):
    http_port, (tls_http_port, https_port), cert, logs = sites
    if site == "http":
        bases = [(f"http://{PORTAL}:{http_port}", f"http://{HUB}:{http_port}")]
    else:
        bases = [
            (f"https://{PORTAL}:{https_port}", f"https://{HUB}:{https_port}"),
            (f"http://{PORTAL}:{tls_http_port}", f"http://{HUB}:{tls_http_port}"),  # the redirects log too
        ]
    with client(cert) as browser:
        for base_portal, base_hub in bases:
            for url, headers in requests_with_secrets(base_portal, base_hub):
                assert browser.get(url, headers=headers).status_code in (301, 502)
    log = logs[site].read_text()
    for secret in SECRETS:
        assert secret not in log, f"{secret} is in Nginx's access log:\n{log}"
    # What is kept: each request's method, path (one-time tokens masked, "?" where a query was), status.
    assert '"GET /accounts/set-password/MTI/[token]/ HTTP/1.1" ' in log, log
    assert '"GET /accounts/reset/MTI/[token]/ HTTP/1.1" ' in log, log
    assert '/accounts/reset/MTI/[token]/" "python-httpx' in log, log  # the Referer, masked the same way
    assert '"GET /jupyter/hub/oauth_callback? HTTP/1.1" ' in log, log
    assert '/jupyter/hub/oauth_callback" "python-httpx' in log, log  # a Referer without its query
