"""What a browser does against a running Stack, written with httpx: sign up, log in, open JupyterLab.

Plain functions; the fixtures in conftest.py and the tests call them. Every client talks to 127.0.0.1 only
(`trust_env=False`, so no proxy from the environment sees the traffic) and asks for English pages, so
assertion messages are readable.
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import json
import re
import secrets
import time
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.live import secret_file

PASSWORD = "Cfps-analysis-2026"
INVITE_CODE = "E2E-INVITE-2026"  # created by `bootstrap` from INVITE_CODES (see conftest.py)
HUB_CLIENT_ID = "jupyterhub"
SPAWN_TIMEOUT = 60.0

_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class FlowError(AssertionError):
    """A step of a flow did not end where a browser would have; carries the stack's log tail."""


def unique_username(prefix: str) -> str:
    """A fresh, valid username (3-32 chars of a-z0-9-_), so no two tests ever share an account."""
    return f"{prefix}-{secrets.token_hex(3)}"


class _BrowserCookiePolicy(http.cookiejar.DefaultCookiePolicy):
    """Cookies as Chromium keeps them: JupyterHub's session cookie says `Domain=localhost` (its host routing
    names the hub's domain), which Chromium accepts from localhost as a cookie of localhost alone (a top-level
    name is no domain to share), so `<name>.localhost` never receives it; the standard library's policy
    refuses it for a name without a dot."""

    @staticmethod
    def _localhost(cookie_domain: str, request) -> bool | None:
        if cookie_domain.lstrip(".") != "localhost":
            return None
        return urlsplit(request.get_full_url()).hostname == "localhost"

    def set_ok_domain(self, cookie, request):
        ok = self._localhost(cookie.domain, request)
        return super().set_ok_domain(cookie, request) if ok is None else ok

    def return_ok_domain(self, cookie, request):
        ok = self._localhost(cookie.domain, request)
        return super().return_ok_domain(cookie, request) if ok is None else ok

    def domain_return_ok(self, domain, request):
        # The jar's quick look before return_ok_domain: it would never even offer a ".localhost" cookie.
        ok = self._localhost(domain, request)
        return super().domain_return_ok(domain, request) if ok is None else ok


class BrowserTransport(httpx.BaseTransport):
    """What a browser does below the page, for a StackClient:
    - sends `*.localhost` names (the students' own hosts, RFC 6761's loopback names) to 127.0.0.1, as browsers
      do (this machine's resolver knows only `localhost` itself); the request keeps its Host header, and over
      https its name for SNI and the certificate check, so the proxy and Nginx see what a browser sends;
    - sends the cookies the client's jar gives by its own policy (_BrowserCookiePolicy): httpx copies the jar
      into one with the standard policy for each request and redirect, which would send other cookies."""

    def __init__(self, jar: http.cookiejar.CookieJar, **kwargs):
        self._jar = jar
        self._inner = httpx.HTTPTransport(**kwargs)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = httpx.Headers(request.headers)
        headers.pop("Cookie", None)
        asked = urllib.request.Request(str(request.url), method=request.method)
        self._jar.add_cookie_header(asked)
        if asked.get_header("Cookie"):
            headers["Cookie"] = asked.get_header("Cookie")
        url, extensions = request.url, dict(request.extensions)
        if url.host.endswith(".localhost"):
            url, extensions["sni_hostname"] = url.copy_with(host="127.0.0.1"), url.host
        sent = httpx.Request(request.method, url, headers=headers, stream=request.stream, extensions=extensions)
        return self._inner.handle_request(sent)

    def close(self) -> None:
        self._inner.close()


class StackClient(httpx.Client):
    """A 'browser' on a Stack: a relative URL goes to the origin `stack.url()` gives it (a student's own host for
    /jupyter/user/<name>/..., the hub's for the rest of /jupyter/, the portal's for the rest), as the links on
    the pages do."""

    def __init__(self, stack, *, verify=True, trust_env=False, local_address: str | None = None, **kwargs):
        """`local_address`: the loopback address to connect from (a client other than the default one)."""
        self._stack = stack
        jar = http.cookiejar.CookieJar(policy=_BrowserCookiePolicy())
        transport = BrowserTransport(jar, verify=verify, trust_env=trust_env, local_address=local_address)
        super().__init__(
            base_url=stack.base_url, cookies=jar, transport=transport, verify=verify, trust_env=trust_env, **kwargs
        )

    def _merge_url(self, url):
        if isinstance(url, str) and url.startswith("/"):
            url = self._stack.url(url)
        return super()._merge_url(url)

    def send(self, request: httpx.Request, **kwargs) -> httpx.Response:
        """Follows `Refresh: 0; url=...` as browsers do (the hub's logout moves on that way, see
        hubconfig/authenticator.py), when following redirects."""
        response = super().send(request, **kwargs)
        refresh = response.headers.get("refresh", "")
        if "url=" in refresh and kwargs.get("follow_redirects", self.follow_redirects):
            response.read()
            then = self.send(self.build_request("GET", refresh.split("url=", 1)[1].strip()), **kwargs)
            then.history = [*response.history, response, *then.history]
            return then
        return response


def request(method: str, url: str, *, verify=True, **kwargs) -> httpx.Response:
    """One request without cookies, to any public URL of a stack (a student's `*.localhost` host included)."""
    transport = BrowserTransport(http.cookiejar.CookieJar(), verify=verify, trust_env=False)
    with httpx.Client(transport=transport, verify=verify, trust_env=False, timeout=30) as client:
        return client.request(method, url, **kwargs)


def new_client(stack, **headers: str) -> httpx.Client:
    """A fresh 'browser' (own cookie jar); over https it trusts what the stack says (BehindNginx.verify)."""
    return StackClient(
        stack,
        verify=getattr(stack, "verify", True),
        trust_env=False,
        follow_redirects=True,
        timeout=60,
        headers={"Accept-Language": "en", **headers},
    )


def explain(stack, message: str) -> str:
    """An assertion message with the tail of the hub's and the portal's logs."""
    return f"{message}\n{stack.log_tail()}"


def fail(stack, message: str) -> FlowError:
    return FlowError(explain(stack, message))


def path_of(url) -> str:
    return urlsplit(str(url)).path


def query_of(url) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(str(url)).query).items()}


def urls_of(response: httpx.Response) -> list[str]:
    """Every URL a browser would have loaded for this response: each redirect, then the final page."""
    return [str(r.url) for r in response.history] + [str(response.url)]


def csrf_token(client: httpx.Client, html: str = "") -> str:
    match = _CSRF_FIELD.search(html)
    return match.group(1) if match else client.cookies.get("cfps_csrftoken", path="/")


def post_form(stack, client: httpx.Client, page: httpx.Response, data: dict, **kwargs) -> httpx.Response:
    """POST `data` to the form page `page` was, with its CSRF token and a same-origin Referer."""
    return client.post(
        str(page.url),
        data={"csrfmiddlewaretoken": csrf_token(client, page.text), **data},
        headers={"Referer": str(page.url)},
        **kwargs,
    )


def logged_in_as(page_html: str) -> str | None:
    """The username the portal's header shows, or None for the logged-out header."""
    match = re.search(r'<span class="who">([^<]*)</span>', page_html)
    return match.group(1) if match else None


# --- accounts ---------------------------------------------------------------------------------------
def signup(stack, client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    """Sign up through the portal form with the suite's invite code; the client ends up logged in."""
    form = client.get("/accounts/signup/")
    response = post_form(
        stack,
        client,
        form,
        {"username": username, "password1": password, "password2": password, "invite_code": INVITE_CODE},
    )
    if logged_in_as(response.text) != username:
        raise fail(stack, f"sign-up of {username} did not log in (ended at {response.url}):\n{response.text[:2000]}")
    return response


def create_user(
    stack,
    username: str,
    *,
    staff: bool = False,
    superuser: bool = False,
    role: str | None = None,
    groups: tuple[str, ...] = (),
) -> int:
    """Create an account in the portal's database with `manage.py shell`, as an operator would.

    `role` ("teacher" or "ta", the roles `bootstrap` made: accounts.roles) makes a staff member with that role;
    `staff` alone enters the admin with no permission at all; `superuser` gets every permission. Hub admins
    (the `is_staff` claim) are teachers and superusers.
    """
    script = (
        "from django.contrib.auth.models import Group\n"
        "from accounts.models import StaffRole, User\n"
        f"u = User.objects.create_user(username={username!r}, password={PASSWORD!r},"
        f" is_staff={bool(staff or superuser or role)!r}, is_superuser={superuser!r})\n"
        f"for name in {list(groups)!r}:\n"
        "    u.groups.add(Group.objects.get_or_create(name=name)[0])\n"
        f"if {role!r}:\n"
        f"    u.groups.add(StaffRole.objects.get(key={role!r}).group)\n"
        "print(u.pk)\n"
    )
    return int(stack.manage("shell", "-c", script).stdout.split()[-1])


def oauth_grants(stack, username: str) -> dict[str, int]:
    """How many live OAuth artefacts the portal holds for `username` (read from its database)."""
    script = (
        "import json\n"
        "from oauth2_provider.models import AccessToken, Grant, IDToken, RefreshToken\n"
        f"user = {{'user__username': {username!r}}}\n"
        "print(json.dumps({\n"
        "    'access_tokens': AccessToken.objects.filter(**user).count(),\n"
        "    'live_refresh_tokens': RefreshToken.objects.filter(revoked__isnull=True, **user).count(),\n"
        "    'grants': Grant.objects.filter(**user).count(),\n"
        "    'id_tokens': IDToken.objects.filter(**user).count(),\n"
        "}))\n"
    )
    return json.loads(stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


def portal_login(stack, client: httpx.Client, username: str, password: str = PASSWORD, *, page=None) -> httpx.Response:
    """Fill in the portal's login form (the one `page` shows, else /accounts/login/) and submit it."""
    page = page if page is not None else client.get("/accounts/login/")
    if path_of(page.url) != "/accounts/login/":
        raise fail(stack, f"expected the portal login page, got {page.url}")
    return post_form(stack, client, page, {"username": username, "password": password})


def hub_login(stack, client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    """Log in to the hub without spawning: the hub sends the browser to the portal, and back to hub/home."""
    page = client.get("/jupyter/hub/login", params={"next": "/jupyter/hub/home"})
    if path_of(page.url) == "/accounts/login/":  # no portal session yet: the portal asks once
        page = portal_login(stack, client, username, password, page=page)
    if path_of(page.url) != "/jupyter/hub/home" or page.status_code != 200:
        raise fail(stack, f"hub login of {username} ended at {page.status_code} {page.url}: {urls_of(page)}")
    return page


def wait_for_lab(stack, client: httpx.Client, username: str, response: httpx.Response) -> list[str]:
    """Keep loading the spawn-pending page like a browser until it lands on /jupyter/user/<name>/lab.

    Returns every URL loaded on the way (redirects included).
    """
    lab = f"/jupyter/user/{username}/lab"
    urls = urls_of(response)
    deadline = time.monotonic() + SPAWN_TIMEOUT
    while not (path_of(response.url) == lab and response.status_code == 200):
        if time.monotonic() > deadline:
            raise fail(stack, f"{username}'s JupyterLab not reached in {SPAWN_TIMEOUT:.0f}s; visited {urls}")
        if path_of(response.url).startswith("/accounts/"):
            raise fail(stack, f"the portal asked {username} to log in again: {urls}")
        time.sleep(0.5)
        target = (
            str(response.url) if "/spawn-pending/" in str(response.url) else "/jupyter/hub/spawn-pending/" + username
        )
        response = client.get(target)
        urls += urls_of(response)
    return urls


def hub_user_model(client: httpx.Client) -> httpx.Response:
    """GET /jupyter/hub/api/user with the browser's hub cookies (the user's own model)."""
    return client.get("/jupyter/hub/api/user", headers={"Accept": "application/json"})


def hub_xsrf_token(client: httpx.Client) -> str:
    """The hub's XSRF token for this browser (the `_xsrf` cookie its pages set on /jupyter/hub/), after a page."""
    client.get("/jupyter/hub/home")
    tokens = [c.value for c in client.cookies.jar if c.name == "_xsrf" and c.path == "/jupyter/hub/"]
    assert tokens, f"the hub set no _xsrf cookie: {[(c.name, c.domain, c.path) for c in client.cookies.jar]}"
    return tokens[-1]


def hub_api(stack, path: str) -> httpx.Response:
    """GET the hub REST API directly on loopback as the portal service (its own token)."""
    return httpx.get(
        stack.hub_api_url + path,
        headers={"Authorization": f"token {stack.hub_admin_token()}"},
        trust_env=False,
        timeout=10,
    )


def wait_until(predicate, timeout: float, interval: float = 0.5):
    """Call `predicate` until it returns something truthy or `timeout` s passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- OAuth as the hub's client ------------------------------------------------------------------------
def hub_client_secret(stack) -> str:
    return stack.env.get("HUB_CLIENT_SECRET") or secret_file(stack.env, "HUB_CLIENT_SECRET")


def hub_callback_url(stack) -> str:
    return stack.url("/jupyter/hub/oauth_callback")


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 defines them."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(stack, **overrides) -> dict[str, str]:
    """A valid authorization request of the hub's client; a None override leaves that parameter out."""
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": HUB_CLIENT_ID,
        "redirect_uri": hub_callback_url(stack),
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {key: value for key, value in params.items() if value is not None}


def authorize(stack, client: httpx.Client, params: dict[str, str]) -> httpx.Response:
    """One GET of /o/authorize/ through the proxy, NOT following the answer (it may point anywhere)."""
    return client.get("/o/authorize/?" + urlencode(params), follow_redirects=False)


def exchange_code(stack, code: str, verifier: str) -> httpx.Response:
    """POST the code to the public /o/token/ as the hub's confidential client (HTTP Basic)."""
    return httpx.post(
        stack.url("/o/token/"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": hub_callback_url(stack),
            "code_verifier": verifier,
        },
        auth=(HUB_CLIENT_ID, hub_client_secret(stack)),
        trust_env=False,
        timeout=30,
    )


def authorization_code(stack, client: httpx.Client) -> tuple[str, str]:
    """Complete one S256 authorization as the hub's client for the logged-in `client`: (code, verifier)."""
    verifier, challenge = pkce_pair()
    params = authorize_params(stack, code_challenge=challenge)
    response = authorize(stack, client, params)
    location = response.headers.get("location", "")
    query = query_of(location)
    if response.status_code != 302 or not location.startswith(hub_callback_url(stack)) or "code" not in query:
        raise fail(stack, f"authorize gave {response.status_code} location={location!r}:\n{response.text[:1500]}")
    if query.get("state") != params["state"]:
        raise fail(stack, f"authorize lost the state: sent {params['state']!r}, got {location!r}")
    return query["code"], verifier


def issue_tokens(stack, client: httpx.Client) -> dict:
    """Authorize as the hub's client for the logged-in `client` and exchange the code: the token response."""
    code, verifier = authorization_code(stack, client)
    response = exchange_code(stack, code, verifier)
    if response.status_code != 200:
        raise fail(stack, f"the token endpoint refused a fresh code: {response.status_code} {response.text}")
    return response.json()


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, NOT verified (only to compare claims the provider itself issued)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
