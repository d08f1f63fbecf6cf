"""`manage.py gen_nginx`: the generated site passes `nginx -t`, with and without TLS, alone and inside
Debian's own nginx.conf; values that could smuggle in a directive are refused; writing is idempotent.
(test_nginx_live.py runs the same site for real in front of the whole system.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.conftest import DOMAIN, manage, nginx_test, require_tool, self_signed_certificate, wrap_site

DEBIAN_NGINX_CONF = Path("/etc/nginx/nginx.conf")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """One certificate for the portal's name, the hub's and the students' (*.hub.DOMAIN)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), DOMAIN, f"hub.{DOMAIN}", f"*.hub.{DOMAIN}")


def generate(tmp_path: Path, *args: str, **env: str) -> str:
    """The site as gen_nginx prints it, with its cache and access log in tmp_path (nginx -t creates them), and
    a loopback resolver (OCSP stapling's; nothing asks it here)."""
    env = {"APP_DOMAIN_NAME": DOMAIN, **env}
    paths = ["--cache-dir", str(tmp_path / "cache"), "--access-log", str(tmp_path / "access.log")]
    return manage("gen_nginx", *paths, "--resolver", "127.0.0.1", *args, env=env).stdout


# The one warning `nginx -t` gives for a TLS site with a self-signed test certificate: it has no issuer and
# no OCSP responder to staple (a CA's certificate has both).
STAPLING_WARNING = re.compile(
    r'nginx: \[warn\] "ssl_stapling" ignored, issuer certificate not found for certificate "[^"]+"\n'
)


def tls_args(certificate) -> list[str]:
    cert, key = certificate
    return ["--tls", "--certificate", str(cert), "--certificate-key", str(key)]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_generated_site_passes_nginx_t(tmp_path, certificate, tls):
    site = tmp_path / "cfps.conf"
    site.write_text(generate(tmp_path, *(tls_args(certificate) if tls else [])))
    result = nginx_test(wrap_site(site, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    others = STAPLING_WARNING.sub("", result.stderr)
    assert "[warn]" not in others and "[emerg]" not in others, result.stderr
    assert bool(STAPLING_WARNING.search(result.stderr)) is tls, result.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_generated_site_passes_nginx_t_inside_debians_own_nginx_conf(tmp_path, certificate, tls):
    """As installed: Debian's http block already sets gzip, ssl_protocols and friends; nothing may clash."""
    require_tool("nginx", "nginx")
    if not DEBIAN_NGINX_CONF.exists():
        message = f"{DEBIAN_NGINX_CONF} is not here (Debian's nginx package installs it)"
        pytest.skip(message)
    site = tmp_path / "cfps.conf"
    site.write_text(generate(tmp_path, *(tls_args(certificate) if tls else [])))
    conf = DEBIAN_NGINX_CONF.read_text()
    conf, count = re.subn(r"include\s+/etc/nginx/sites-enabled/\*;", f"include {site};", conf)
    assert count == 1, "Debian's nginx.conf no longer includes sites-enabled/*"
    conf = re.sub(r"(?m)^pid\s+\S+;", f"pid {tmp_path / 'nginx.pid'};", conf)
    (tmp_path / "nginx.conf").write_text(conf)
    result = nginx_test(tmp_path / "nginx.conf", tmp_path)
    assert result.returncode == 0, result.stderr


def servers(site: str) -> dict[str, str]:
    """Each `server { ... }` block of the site by its server_name line."""
    blocks = site.split("\nserver {")[1:]
    return {re.search(r"server_name ([^;]+);", block).group(1): block for block in blocks}


def test_plain_site_sends_the_portals_host_to_gunicorn_and_the_hubs_to_the_proxy(tmp_path):
    site = generate(tmp_path, PORT="8123", PORTAL_PORT="8124", PROXY_SECRET="proxy-secret-for-tests-0123456789")
    blocks = servers(site)
    assert set(blocks) == {DOMAIN, f"hub.{DOMAIN} *.hub.{DOMAIN}"}, list(blocks)
    portal, hub = blocks[DOMAIN], blocks[f"hub.{DOMAIN} *.hub.{DOMAIN}"]
    assert "server 127.0.0.1:8124;" in site and "server 127.0.0.1:8123;" in site
    assert portal.count("proxy_pass http://cfps_portal;") == 2 and "cfps_front" not in portal  # /, /static/
    assert hub.count("proxy_pass http://cfps_front;") == 1 and "cfps_portal" not in hub
    for block in (portal, hub):
        for header in (
            "X-Forwarded-For $proxy_add_x_forwarded_for",
            "X-Forwarded-Proto $scheme",
            "X-Forwarded-Host $http_host",
            "Upgrade $http_upgrade",
        ):
            assert f"proxy_set_header {header};" in block
        assert "location ^~ /.well-known/acme-challenge/" in block and "root /var/www/certbot;" in block
        assert "client_max_body_size 100m;" in block and "gzip on;" in block
        assert "X-Real-IP" not in block  # never read: anyone can write it
    # Only the portal is told the proxy secret; students' servers never see it.
    assert 'proxy_set_header X-Cfps-Proxy "proxy-secret-for-tests-0123456789";' in portal
    assert "proxy-secret-for-tests" not in hub
    assert "proxy_buffering off;" in hub
    assert "ssl_certificate" not in site and "return 301" not in site
    # A class's logins queue for the password check: the portal's answers may take longer than Nginx's 60 s.
    assert "proxy_read_timeout 5m;" in portal


def test_the_hubs_server_block_serves_every_students_host_by_default(tmp_path):
    blocks = servers(generate(tmp_path))
    assert f"hub.{DOMAIN} *.hub.{DOMAIN}" in blocks, list(blocks)
    shared = servers(generate(tmp_path, USER_SUBDOMAINS="false"))  # the opt-out (dev here; prod wants the key)
    assert f"hub.{DOMAIN}" in shared and f"hub.{DOMAIN} *.hub.{DOMAIN}" not in shared, list(shared)


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        ((DOMAIN, f"hub.{DOMAIN}"), f"*.hub.{DOMAIN}"),  # what certbot's http challenge gives: no wildcard
        ((DOMAIN, f"*.{DOMAIN}"), f"*.hub.{DOMAIN}"),  # a wildcard one level up covers hub., not <name>.hub.
        ((DOMAIN, f"*.hub.{DOMAIN}"), f"hub.{DOMAIN}"),  # the wildcard alone leaves out the hub's own name
    ],
    ids=["no-wildcard", "wildcard-one-level-up", "no-hub-name"],
)
def test_tls_refuses_a_hub_certificate_that_does_not_cover_every_students_host(tmp_path, names, missing):
    cert, key = self_signed_certificate(tmp_path / "tls", *names)
    result = manage(
        "gen_nginx", "--tls", "--certificate", str(cert), "--certificate-key", str(key),
        env={"APP_DOMAIN_NAME": DOMAIN}, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"does not cover {missing}" in result.stderr and str(cert) in result.stderr, result.stderr
    assert "wildcard" in result.stderr and "Traceback" not in result.stderr


def test_tls_takes_a_separate_wildcard_certificate_for_the_hub(tmp_path):
    portal_cert, portal_key = self_signed_certificate(tmp_path / "portal", DOMAIN)
    hub_cert, hub_key = self_signed_certificate(tmp_path / "hub", f"hub.{DOMAIN}", f"*.hub.{DOMAIN}")
    args = ["--certificate", str(portal_cert), "--certificate-key", str(portal_key)]
    args += ["--hub-certificate", str(hub_cert), "--hub-certificate-key", str(hub_key)]
    site = tmp_path / "cfps.conf"
    site.write_text(generate(tmp_path, "--tls", *args))
    blocks = servers(site.read_text())
    assert f"ssl_certificate {hub_cert};" in blocks[f"hub.{DOMAIN} *.hub.{DOMAIN}"]
    assert f"ssl_certificate {portal_cert};" in blocks[DOMAIN]
    result = nginx_test(wrap_site(site, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    # On a shared hub origin (the opt-out) the hub's certificate needs no wildcard.
    shared = generate(tmp_path, "--tls", *args[:4], USER_SUBDOMAINS="false")
    assert f"ssl_certificate {portal_cert};" in servers(shared)[f"hub.{DOMAIN}"]


def test_the_site_file_is_readable_by_its_owner_only(tmp_path):
    target = tmp_path / "cfps"
    manage("gen_nginx", "--output", str(target), env={"APP_DOMAIN_NAME": DOMAIN})
    assert target.stat().st_mode & 0o777 == 0o600


def test_tls_site_redirects_http_and_uses_the_letsencrypt_paths_by_default(tmp_path):
    live = Path("/etc/letsencrypt/live") / DOMAIN
    if (live / "fullchain.pem").exists():
        message = f"this machine has a real certificate for the test domain in {live}"
        pytest.skip(message)
    # Without a certificate there, --tls refuses in one line and names where it looked.
    result = manage("gen_nginx", "--tls", env={"APP_DOMAIN_NAME": DOMAIN}, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and str(live / "fullchain.pem") in result.stderr
    assert "certbot" in result.stderr and "Traceback" not in result.stderr


def test_tls_site_has_modern_tls_and_hsts(tmp_path, certificate):
    site = generate(tmp_path, *tls_args(certificate), SECURE_HSTS_SECONDS="63072000")
    blocks = servers(site)
    http = blocks[f"{DOMAIN} hub.{DOMAIN} *.hub.{DOMAIN}"]
    assert "return 301 https://$host$request_uri;" in http  # every name, each to itself
    assert "location ^~ /.well-known/acme-challenge/" in http  # renewals still work over http
    for https in (blocks[DOMAIN], blocks[f"hub.{DOMAIN} *.hub.{DOMAIN}"]):
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
        for line in ("ssl_stapling on;", "ssl_stapling_verify on;", "resolver 127.0.0.1 valid=300s;"):
            assert line in https, line
        assert "ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;" in https
    # The portal's name: includeSubDomains only when asked (other campus sites may live under it); the hub's
    # name: always (each student's server has a subdomain of it, all https).
    assert blocks[DOMAIN].count('add_header Strict-Transport-Security "max-age=63072000" always;') == 2  # + /static/
    assert (
        'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'
        in blocks[f"hub.{DOMAIN} *.hub.{DOMAIN}"]
    )
    assert "Strict-Transport-Security" not in http  # never over plain http
    asked = servers(generate(tmp_path, *tls_args(certificate), SECURE_HSTS_INCLUDE_SUBDOMAINS="true"))[DOMAIN]
    assert 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;' in asked


SECURITY_HEADERS = (
    "add_header X-Content-Type-Options $cfps_content_type_options always;",
    "add_header Referrer-Policy $cfps_referrer_policy always;",
    "add_header Permissions-Policy $cfps_permissions_policy always;",
)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_every_server_and_every_location_with_headers_of_its_own_sends_the_security_headers(tmp_path, certificate, tls):
    site = generate(tmp_path, *(tls_args(certificate) if tls else []))
    blocks = servers(site)
    for name, block in blocks.items():
        # Nginx drops the server's add_header lines where a location has its own: each such location repeats them.
        scopes = [block, *re.findall(r"\n    location [^{]+\{(.*?)\n    \}", block, re.S)]
        for scope in scopes:
            if "add_header" not in scope:
                continue
            for line in SECURITY_HEADERS:
                assert line in scope, (name, line, scope)
            frame = "sameorigin" if name.startswith("hub.") else "deny"
            assert f"add_header X-Frame-Options $cfps_frame_options_{frame} always;" in scope, (name, scope)
    policy = re.search(r'map \$upstream_http_permissions_policy \$cfps_permissions_policy \{\s*""\s+"([^"]+)";', site)
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in policy.group(1)
    assert "clipboard" not in policy.group(1) and "fullscreen" not in policy.group(1)  # JupyterLab uses both


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_the_access_log_format_has_no_query_string_and_masks_one_time_links(tmp_path, certificate, tls):
    site = generate(tmp_path, *(tls_args(certificate) if tls else []))
    log_format = re.search(r"log_format cfps_scrubbed (.*?);\n", site, re.S).group(1)
    for leak in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$http_referer", "$uri"):
        assert leak not in log_format, leak
    assert "$cfps_log_uri" in log_format and "$cfps_log_referer" in log_format
    for name, block in servers(site).items():
        assert f"access_log {tmp_path / 'access.log'} cfps_scrubbed;" in block, name


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {"APP_DOMAIN_NAME": ""}, "APP_DOMAIN_NAME"),
        ([], {"APP_DOMAIN_NAME": "hub.example.edu.cn; return 200"}, "APP_DOMAIN_NAME"),
        (["--acme-webroot", "/var/www/x;\n}"], {}, "--acme-webroot"),
        (["--max-body-size", "100m; allow all"], {}, "--max-body-size"),
    ],
    ids=["no-domain", "domain-injection", "webroot-injection", "size-injection"],
)
def test_bad_values_are_refused_in_one_line(args, env, named):
    result = manage("gen_nginx", *args, env={"APP_DOMAIN_NAME": DOMAIN, **env}, check=False)
    assert result.returncode != 0
    assert named in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_writing_twice_changes_nothing_and_dry_run_writes_nothing(tmp_path):
    target = tmp_path / "sites" / "cfps"
    env = {"APP_DOMAIN_NAME": DOMAIN}
    dry = manage("gen_nginx", "--output", str(target), "--dry-run", env=env)
    assert "would create" in dry.stdout and not target.exists()
    first = manage("gen_nginx", "--output", str(target), env=env)
    assert "created" in first.stdout
    stamp = target.stat().st_mtime_ns
    again = manage("gen_nginx", "--output", str(target), env=env)
    assert "unchanged" in again.stdout and target.stat().st_mtime_ns == stamp
    assert target.read_text() == manage("gen_nginx", env=env).stdout
    changed = manage("gen_nginx", "--output", str(target), env={**env, "PORT": "8200"})
    assert "updated" in changed.stdout and "127.0.0.1:8200" in target.read_text()
