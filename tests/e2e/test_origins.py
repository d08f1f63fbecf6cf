"""Two origins (issue 9): the portal on its host name, the hub and every student's server on another, with
logout ending both sessions from either side. Through the real proxy (both implementations), hub and portal.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import flows
from tests.e2e.flows import explain, path_of, urls_of


def test_the_portals_host_name_never_reaches_the_hub_or_a_students_server(stack, client, student):
    flows.hub_login(stack, client, student)
    for path in ("/jupyter/hub/api", f"/jupyter/user/{student}/api/status", "/jupyter/hub/login"):
        response = client.get(stack.portal_url(path), follow_redirects=False)
        assert response.status_code == 404, explain(stack, f"{path} on the portal's host: {response.status_code}")
        # The portal's own 404 page (its policy), not the hub's or a student's answer.
        assert "script-src 'self'" in response.headers.get("content-security-policy", ""), response.headers


def test_the_hub_answers_on_its_own_host_name(stack, client):
    response = client.get(stack.hub_url("/jupyter/hub/api"))
    assert response.status_code == 200 and "version" in response.json(), explain(stack, response.text[:300])


def test_the_portal_refuses_a_request_naming_the_hubs_host(stack):
    # Straight at the portal's own port, as any local process could.
    response = httpx.get(
        f"http://127.0.0.1:{stack.portal.port}/accounts/login/", headers={"Host": "localhost"}, trust_env=False
    )
    assert response.status_code == 400, response.status_code


def test_portal_cookies_are_host_only_on_the_portals_host(stack, client, student):
    flows.hub_login(stack, client, student)
    portal_cookies = {c.name: c for c in client.cookies.jar if c.name.startswith("cfps_")}
    assert {"cfps_session", "cfps_csrftoken"} <= set(portal_cookies), portal_cookies
    for cookie in portal_cookies.values():
        assert cookie.domain == "127.0.0.1" and not cookie.domain_specified, (cookie.name, cookie.domain)
    # (the standard library files a host-only cookie of "localhost" under "localhost.local")
    hub_cookie_hosts = {c.domain.lstrip(".") for c in client.cookies.jar if c.name.startswith("jupyterhub")}
    assert hub_cookie_hosts and hub_cookie_hosts <= {"localhost", "localhost.local"}, hub_cookie_hosts


def test_open_jupyterlab_points_at_the_hubs_origin(stack, client, student):
    home = client.get("/")
    assert f'href="{stack.hub_base_url}/jupyter/"' in home.text, explain(stack, home.text[:2000])


def test_portal_pages_carry_a_content_security_policy(stack, client):
    for path in ("/", "/accounts/login/", "/admin/login/"):
        policy = client.get(path).headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, (path, policy)
        assert "'unsafe-inline'" not in policy, (path, policy)


def test_hub_pages_carry_the_hubs_security_headers(stack, client):
    response = client.get("/jupyter/hub/login", follow_redirects=False)
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), response.headers
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers


def test_logging_out_of_the_portal_also_ends_the_hub_session(stack, client, student):
    flows.hub_login(stack, client, student)
    assert flows.hub_user_model(client).status_code == 200
    logout_page = client.get("/")
    response = client.post(
        "/accounts/logout/",
        data={"csrfmiddlewaretoken": flows.csrf_token(client, logout_page.text)},
        headers={"Referer": str(logout_page.url)},
    )
    urls = urls_of(response)
    assert path_of(response.url) == "/" and str(response.url).startswith(stack.base_url), explain(stack, str(urls))
    assert any(url.startswith(stack.hub_url("/jupyter/hub/logout")) for url in urls), explain(stack, str(urls))
    assert flows.logged_in_as(response.text) is None, explain(stack, "the portal still shows a user")
    assert flows.hub_user_model(client).status_code == 403, explain(stack, "the hub cookie still works")
    again = client.get("/jupyter/hub/")
    assert path_of(again.url) == "/accounts/login/", explain(stack, f"/jupyter/hub/ did not ask: {urls_of(again)}")


def test_logging_out_of_the_hub_ends_the_portal_session_without_a_question(stack, client, student):
    flows.hub_login(stack, client, student)
    response = client.get("/jupyter/hub/logout")
    urls = urls_of(response)
    assert any("/o/logout/" in url and "id_token_hint=" in url for url in urls), explain(stack, str(urls))
    assert str(response.url) == stack.url("/"), explain(stack, f"ended at {response.url}: {urls}")
    assert flows.logged_in_as(response.text) is None, explain(stack, "the portal still shows the student")
    assert flows.logged_in_as(client.get("/").text) is None
    assert flows.hub_user_model(client).status_code == 403


def test_the_portals_end_session_endpoint_asks_when_no_id_token_proves_who_sent_the_browser(stack, client, student):
    # Any site could link here; without the hub's id_token it must not log the student out silently.
    response = client.get("/o/logout/", params={"client_id": flows.HUB_CLIENT_ID})
    assert response.status_code == 200 and response.request.method == "GET", explain(stack, str(urls_of(response)))
    assert flows.logged_in_as(client.get("/").text) == student, explain(stack, "a bare GET logged the student out")


def log_out(stack, client, student: str, where: str) -> httpx.Response:
    if where == "jupyterlab":  # File → Log Out: the hub's host, then the server's own logout, then the hub's
        return client.get(stack.hub_url(f"/jupyter/user/{student}/logout"))
    if where == "hub":  # the hub's pages' logout link
        return client.get("/jupyter/hub/logout")
    page = client.get("/")  # the portal's header
    data = {"csrfmiddlewaretoken": flows.csrf_token(client, page.text)}
    return client.post("/accounts/logout/", data=data, headers={"Referer": str(page.url)})


@pytest.mark.parametrize("where", ["jupyterlab", "hub", "portal"])
def test_after_logging_out_the_next_person_at_the_pc_cannot_open_the_students_jupyterlab(stack, client, student, where):
    flows.hub_login(stack, client, student)
    flows.wait_for_lab(stack, client, student, client.get(f"/jupyter/hub/spawn/{student}"))
    lab = f"/jupyter/user/{student}/lab"
    assert str(client.get(lab).url) == stack.url(lab)  # on the student's own host
    out = log_out(stack, client, student, where)
    assert flows.logged_in_as(out.text) is None and str(out.url) == stack.url("/"), explain(stack, str(urls_of(out)))
    # The same browser, the next person: the student's JupyterLab asks for a login at the portal.
    again = client.get(lab)
    assert path_of(again.url) == "/accounts/login/", explain(stack, f"reached {again.url}: {urls_of(again)}")
    status = client.get(f"/jupyter/user/{student}/api/status", follow_redirects=False)
    assert status.status_code in (302, 403), explain(stack, f"the server's API still answers: {status.status_code}")
    flows.hub_api(stack, f"/users/{student}/server")  # (the culler or the stack's end stops it)
