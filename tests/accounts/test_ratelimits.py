"""Request limits where the risk is volume (accounts/ratelimits.py, django-ratelimit): a burst past each limit is
refused with the product's 429 page or JSON (Retry-After, never cached), a burst below it all passes, other
clients, tokens, accounts and addresses keep their own counts; a class of 200 logs in through the hub within a
minute on the shipped rates; a cache that is down lets requests through.

The bursts use rates per day: django-ratelimit's windows have a fixed length, and a day-long one cannot end in
the middle of a test.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.urls import reverse
from django_ratelimit.core import get_usage

from accounts import ratelimits, setpassword
from accounts.throttle import Limit
from portal.config import table
from tests.accounts.test_oauth import AUTHORIZE, TOKEN, USERINFO, authorize_params, exchange, full_login, pkce_pair
from tests.accounts.test_password_reset import inbox  # noqa: F401 (fixture)
from tests.accounts.test_throttle import own_redis  # noqa: F401 (fixture)
from tests.conftest import PASSWORD
from tests.course.conftest import course_var  # noqa: F401 (fixture)

User = get_user_model()
pytestmark = pytest.mark.django_db
LOGIN = reverse("login")
ANNOUNCEMENTS = reverse("announcements_json")


def refused_as_json(response) -> bool:
    if response.status_code != HTTPStatus.TOO_MANY_REQUESTS:
        return False
    assert response["Content-Type"] == "application/json" and response.json()["error"] == "too_many_requests"
    assert 0 < int(response["Retry-After"]) <= 86400 and response.json()["retry_after"] == int(response["Retry-After"])
    assert response["Cache-Control"] == "no-store"
    return True


def refused_as_page(response) -> bool:
    if response.status_code != HTTPStatus.TOO_MANY_REQUESTS:
        return False
    assert response["Content-Type"].startswith("text/html") and 0 < int(response["Retry-After"]) <= 86400
    assert "尝试次数过多" in response.content.decode()  # the product's own 429 page, in Chinese by default
    return True


# --- the token endpoint: per client and per address ---------------------------------------------------------
def token_request(client, client_id="jupyterhub"):
    data = {"grant_type": "authorization_code", "code": "no-such-code", "redirect_uri": "http://x/cb"}
    return client.post(TOKEN, {**data, "client_id": client_id, "client_secret": "not-the-secret"})


def test_the_token_endpoint_refuses_a_burst_past_its_limit_per_client(settings):
    settings.OAUTH_TOKEN_RATE_LIMIT = "5/d"
    answers = [token_request(Client(REMOTE_ADDR=f"203.0.113.{i}")) for i in range(7)]
    assert [a.status_code for a in answers[:5]] == [HTTPStatus.UNAUTHORIZED] * 5  # answered (a wrong secret)
    assert all(refused_as_json(a) for a in answers[5:])
    # Another client is counted on its own.
    assert token_request(Client(REMOTE_ADDR="203.0.113.99"), "another-client").status_code == HTTPStatus.UNAUTHORIZED


def test_the_token_endpoint_refuses_a_burst_past_its_limit_per_address(settings):
    settings.OAUTH_TOKEN_RATE_LIMIT = "5/d"
    one_address = Client(REMOTE_ADDR="203.0.113.5")
    answers = [token_request(one_address, f"made-up-{i}") for i in range(6)]
    assert [a.status_code for a in answers[:5]] == [HTTPStatus.UNAUTHORIZED] * 5 and refused_as_json(answers[5])
    assert token_request(Client(REMOTE_ADDR="203.0.113.6"), "made-up-9").status_code == HTTPStatus.UNAUTHORIZED


def test_a_client_in_the_basic_auth_header_is_counted_as_that_client(settings):
    import base64

    settings.OAUTH_TOKEN_RATE_LIMIT = "2/d"
    header = "Basic " + base64.b64encode(b"jupyterhub:not-the-secret").decode()
    data = {"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://x/cb"}
    codes = [
        Client(REMOTE_ADDR=f"203.0.113.{i}").post(TOKEN, data, HTTP_AUTHORIZATION=header).status_code for i in range(3)
    ]
    assert codes[:2] != [HTTPStatus.TOO_MANY_REQUESTS] * 2 and codes[2] == HTTPStatus.TOO_MANY_REQUESTS


# --- the userinfo endpoint: per token -------------------------------------------------------------------------------
@pytest.fixture
def hub_app(db):
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("ensure_hub_client", verbosity=0)
    return get_application_model().objects.get(client_id=settings.HUB_CLIENT_ID)


def test_userinfo_refuses_a_burst_past_its_limit_per_token_and_not_another_token(settings, client, hub_app):
    settings.OAUTH_USERINFO_RATE_LIMIT = "3/d"
    User.objects.create_user(username="student9", password=PASSWORD)
    User.objects.create_user(username="student8", password=PASSWORD)
    mine = full_login(client)["access_token"]
    theirs = full_login(Client(), username="student8")["access_token"]
    hub = Client(REMOTE_ADDR="127.0.0.1")
    answers = [hub.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {mine}") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [HTTPStatus.OK] * 3 and refused_as_json(answers[3])
    assert hub.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {theirs}").status_code == HTTPStatus.OK


# --- password reset and set-password posts ------------------------------------------------------------------------
RESET = reverse("password_reset")


def test_reset_requests_are_limited_per_client_address_across_e_mail_addresses(settings, inbox):  # noqa: F811
    settings.PASSWORD_RESET_IP_RATE_LIMIT = "3/d"
    nat = Client(REMOTE_ADDR="198.51.100.20")
    answers = [nat.post(RESET, {"email": f"someone{i}@example.edu.cn"}) for i in range(4)]
    assert [a.status_code for a in answers[:3]] == [HTTPStatus.FOUND] * 3 and refused_as_page(answers[3])
    other = Client(REMOTE_ADDR="198.51.100.21").post(RESET, {"email": "someone9@example.edu.cn"})
    assert other.status_code == HTTPStatus.FOUND
    assert nat.get(RESET).status_code == HTTPStatus.OK  # reading the page is never counted


def set_password_form(client, user):
    page = client.get(setpassword.link_path(user), follow=True)
    assert page.context["validlink"]
    return page.redirect_chain[-1][0]


def mismatched():
    return {"new_password1": "One-password-2026", "new_password2": "Another-one-2026"}


def test_set_password_posts_are_limited_per_account(settings):
    settings.SET_PASSWORD_RATE_LIMIT = "2/d"
    pupil = User.objects.create_user(username="pupil1")
    browsers = [Client(REMOTE_ADDR=f"198.51.100.{i}") for i in range(3)]
    answers = [b.post(set_password_form(b, pupil), mismatched()) for b in browsers]
    assert [a.status_code for a in answers[:2]] == [HTTPStatus.OK] * 2 and refused_as_page(answers[2])
    other = User.objects.create_user(username="pupil2")
    fresh = Client(REMOTE_ADDR="198.51.100.50")
    assert fresh.post(set_password_form(fresh, other), mismatched()).status_code == HTTPStatus.OK


def test_set_password_posts_are_limited_per_address_across_accounts(settings):
    settings.SET_PASSWORD_IP_RATE_LIMIT = "3/d"
    nat = Client(REMOTE_ADDR="198.51.100.20")
    pupils = [User.objects.create_user(username=f"pupil{i}") for i in range(4)]
    answers = [nat.post(set_password_form(nat, pupil), mismatched()) for pupil in pupils]
    assert [a.status_code for a in answers[:3]] == [HTTPStatus.OK] * 3 and refused_as_page(answers[3])


def test_the_page_behind_a_reset_mail_has_the_same_limits(settings):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    settings.SET_PASSWORD_RATE_LIMIT = "1/d"
    lihua = User.objects.create_user(username="lihua", password=PASSWORD, email="lihua@example.edu.cn")
    uid = urlsafe_base64_encode(force_bytes(lihua.pk))
    link = reverse("password_reset_confirm", args=[uid, default_token_generator.make_token(lihua)])
    browser = Client()
    form = browser.get(link, follow=True).redirect_chain[-1][0]
    assert browser.post(form, mismatched()).status_code == HTTPStatus.OK
    assert refused_as_page(browser.post(form, mismatched()))


# --- admin uploads: per staff account --------------------------------------------------------------------------------
def roster():
    return SimpleUploadedFile("class.csv", b"username,name\nwangwu,Wang Wu\n", content_type="text/csv")


def test_admin_uploads_are_limited_per_staff_account(settings, client, staff, course_var):  # noqa: F811
    from tests.course.test_jobs import NOTEBOOK, admin_post

    settings.ADMIN_UPLOAD_RATE_LIMIT = "3/d"
    client.force_login(staff)
    imports = reverse("admin:accounts_user_import")
    answers = [client.post(imports, {"file": roster()}) for _ in range(2)]
    notebook = SimpleUploadedFile("a.ipynb", NOTEBOOK, content_type="application/x-ipynb+json")
    answers.append(admin_post(client, "material", {}, files=[notebook]))  # a course upload counts too
    assert [a.status_code for a in answers] == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.FOUND]  # previews, saved
    assert refused_as_page(client.post(imports, {"file": roster()}))
    assert refused_as_page(admin_post(client, "material", {}, files=[notebook]))
    assert client.get(imports).status_code == HTTPStatus.OK  # the page itself is never counted
    colleague = User.objects.create_superuser(username="colleague", password=PASSWORD)
    other = Client()
    other.force_login(colleague)
    assert other.post(imports, {"file": roster()}).status_code == HTTPStatus.OK


# --- the announcements API: per address, loopback included ---------------------------------------------------------------
def test_the_announcements_api_refuses_a_burst_past_its_limit_with_json_that_is_never_cached(settings):
    settings.ANNOUNCEMENTS_RATE_LIMIT = "3/d"
    hub = Client(REMOTE_ADDR="127.0.0.1")
    answers = [hub.get(ANNOUNCEMENTS) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [HTTPStatus.OK] * 3 and "public" in answers[0]["Cache-Control"]
    assert refused_as_json(answers[3])  # loopback is counted like any address (accounts/ratelimits.py)
    assert Client(REMOTE_ADDR="10.0.0.8").get(ANNOUNCEMENTS).status_code == HTTPStatus.OK


# --- the shipped rates and a class day ---------------------------------------------------------------------------------
def per_minute(key: str) -> float:
    limit = Limit.parse(table.BY_NAME[key].default_for("prod"))
    return limit.failures * 60 / limit.seconds


def test_the_shipped_rates_leave_room_for_a_class_of_200_three_times_over():
    assert per_minute("OAUTH_TOKEN_RATE_LIMIT") >= 3 * 200  # one token request per login, all from the hub
    hub_refreshes = 2 * 60 / table_int("HUB_AUTH_REFRESH_SECONDS")  # a refresh, and one before a spawn
    assert per_minute("OAUTH_USERINFO_RATE_LIMIT") >= 10 * hub_refreshes
    assert per_minute("SET_PASSWORD_IP_RATE_LIMIT") * 10 >= 3 * 200  # 200 slips in ten minutes, a few tries each
    assert per_minute("ANNOUNCEMENTS_RATE_LIMIT") >= 10 * 4  # the hub polls every 15 s


def table_int(key: str) -> int:
    return int(table.BY_NAME[key].default_for("prod"))


def usage(group: str, value: str, setting: str) -> dict:
    return get_usage(
        RequestFactory().get("/"), group=group, key=lambda g, r: value, rate=getattr(settings, setting), increment=False
    )


def test_a_class_of_200_logs_in_through_the_hub_within_a_minute_on_the_shipped_rates(hub_app):
    """Each student's browser behind one campus NAT address logs in on the portal with the hub's authorization
    request as `next`; the hub (127.0.0.1) exchanges the code and asks userinfo twice (a refresh, and before the
    spawn). Nothing is refused, and the token endpoint's busiest count stays under a third of its limit."""
    names = [f"class-{i:03d}" for i in range(200)]
    for name in names:
        User.objects.create_user(username=name, password=PASSWORD)
    hub = Client(REMOTE_ADDR="127.0.0.1")
    started = time.monotonic()
    statuses = set()
    for name in names:
        browser = Client(REMOTE_ADDR="198.51.100.20")
        verifier, challenge = pkce_pair()
        authorize = AUTHORIZE + "?" + urlencode(authorize_params(challenge))
        login = browser.post(LOGIN + "?" + urlencode({"next": authorize}), {"username": name, "password": PASSWORD})
        callback = urlsplit(login["Location"])
        assert callback.path == urlsplit(settings.TOPOLOGY.hub_callback_url).path, login["Location"]
        tokens = exchange(hub, parse_qs(callback.query)["code"][0], verifier)
        statuses.add(tokens.status_code)
        for _ in range(2):
            statuses.add(hub.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access_token']}").status_code)
    elapsed = time.monotonic() - started
    assert statuses == {HTTPStatus.OK}
    client_count = usage("oauth-token:oauth_client", f"client:{settings.HUB_CLIENT_ID}", "OAUTH_TOKEN_RATE_LIMIT")
    address_count = usage("oauth-token:client_address", "address:127.0.0.1", "OAUTH_TOKEN_RATE_LIMIT")
    limit = Limit.parse(settings.OAUTH_TOKEN_RATE_LIMIT).failures
    assert client_count["count"] <= 200 and address_count["count"] <= 200 and 3 * 200 <= limit
    print(f"\n[class day] 200 hub logins in {elapsed:.1f} s, token endpoint at {client_count['count']}/{limit}")


# --- the shared cache: Redis in prod, and when it is down -------------------------------------------------------------
def test_counts_live_in_redis_where_every_worker_finds_them(settings, own_redis):  # noqa: F811
    from django.core.cache import caches

    settings.ANNOUNCEMENTS_RATE_LIMIT = "2/d"
    answers = [Client(REMOTE_ADDR="203.0.113.30").get(ANNOUNCEMENTS).status_code for _ in range(3)]
    assert answers == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]
    # Another worker process has a connection of its own: the count is in Redis, not in this process.
    other_worker = caches.create_connection("default")
    keys = other_worker._cache.get_client().keys(f"*{settings.RATELIMIT_CACHE_PREFIX}*")
    assert [int(other_worker._cache.get_client().get(key)) for key in keys] == [3]


# --- a cache that is down ---------------------------------------------------------------------------------------------
def test_a_cache_that_is_down_lets_requests_through_with_an_error_in_the_log(settings, own_redis, caplog):  # noqa: F811
    settings.OAUTH_TOKEN_RATE_LIMIT = settings.ANNOUNCEMENTS_RATE_LIMIT = "1/d"
    own_redis()  # stopped: every cache call fails
    with caplog.at_level(logging.ERROR, logger="accounts.ratelimits"):
        tokens = [token_request(Client()).status_code for _ in range(3)]
        polls = [Client().get(ANNOUNCEMENTS).status_code for _ in range(3)]
    assert tokens == [HTTPStatus.UNAUTHORIZED] * 3 and polls == [HTTPStatus.OK] * 3
    assert any("request-limit cache unavailable" in r.getMessage() for r in caplog.records)


def test_a_limit_counts_only_the_methods_it_names(rf, settings):
    settings.SOME_RATE = "1/d"
    limit = ratelimits.RequestLimit("test-methods", [(ratelimits.client_address, "SOME_RATE")])
    assert limit.refusal(rf.get("/")) is None and limit.refusal(rf.get("/")) is None
    assert limit.refusal(rf.post("/")) is None and limit.refusal(rf.post("/")).status_code == 429
