"""Throttling guesses, not students (rules in accounts/throttle.py): only wrong passwords and wrong invite
codes count; a locked attempt gets HTTP 429 with a page saying when to try again before its secret is
checked; a browser's device cookie keeps a targeted lockout from shutting its student out; counts live in
the shared cache, and a cache that is down refuses password and code checks with 503 instead of a 500.

Each window starts with its first failure, so no test depends on where a clock minute falls.
"""

import logging
import shutil
import subprocess
import time
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import throttle
from accounts.throttle import DEVICE_COOKIE, client_ip
from tests.conftest import PASSWORD
from tests.live import free_port

LOGIN = reverse("login")
SIGNUP = reverse("signup")
User = get_user_model()

PROXY_SECRET = "proxy-secret-for-the-throttle-tests-0123456789"


def wrong_login(client, username="student9", **extra):
    return client.post(LOGIN, {"username": username, "password": "wrong"}, **extra)


def good_login(client, username="student9", **extra):
    return client.post(LOGIN, {"username": username, "password": PASSWORD}, **extra)


# --- login: per username ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_login_is_refused_with_429_after_the_per_username_limit(client, student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "3/h"
    for _ in range(3):
        assert wrong_login(client).status_code == HTTPStatus.OK
    response = good_login(client, "STUDENT9")  # the correct password from a new device still waits
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < int(response["Retry-After"]) <= 3600
    assert response.context["retry_after_minutes"] == -(-int(response["Retry-After"]) // 60)


@pytest.mark.django_db
def test_eleven_wrong_passwords_for_one_name_are_refused_on_the_shipped_defaults(client, student):
    codes = [wrong_login(client).status_code for _ in range(10)]
    assert codes == [HTTPStatus.OK] * 10
    assert wrong_login(client).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.parametrize(
    ("seconds", "english"),
    [(42, "Please wait about 1 minute and try again."), (3600, "Please wait about 60 minutes and try again.")],
)
def test_429_page_says_when_to_try_again(rf, db, seconds, english):
    from django.utils import translation

    from accounts.throttle import too_many_requests

    with translation.override("en"):
        response = too_many_requests(rf.post(LOGIN), seconds)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == str(seconds)
    assert english in response.content.decode()
    with translation.override("zh-hans"):
        chinese = too_many_requests(rf.post(LOGIN), seconds).content.decode()
    assert "请" in chinese and english not in chinese


@pytest.mark.django_db
def test_login_limit_for_one_username_does_not_block_another(client, student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "2/m"
    for _ in range(3):
        wrong_login(client, "someone-else")
    response = good_login(client)
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_a_lockout_window_starts_with_its_first_failure_not_at_a_clock_boundary(client, student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "2/h"
    wrong_login(client)
    wrong_login(client)
    retry_after = int(good_login(client)["Retry-After"])
    assert 3590 <= retry_after <= 3600  # a whole hour from the first failure, wherever the clock stands


@pytest.mark.django_db
def test_failures_are_forgotten_when_their_window_ends(client, student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "1/2s"
    wrong_login(client)
    assert good_login(client).status_code == HTTPStatus.TOO_MANY_REQUESTS
    time.sleep(2.2)
    assert good_login(client).status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_an_empty_login_form_is_not_a_guess(client, student, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "1/h"
    settings.LOGIN_IP_FAILURE_LIMIT = "1/h"
    for _ in range(3):
        assert client.post(LOGIN, {"username": "student9", "password": ""}).status_code == HTTPStatus.OK
    assert good_login(client).status_code == HTTPStatus.FOUND


# --- login: per address, failures only -------------------------------------------------------------------
@pytest.mark.django_db
def test_login_is_limited_per_client_ip_across_usernames(client, student, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = "4/h"
    for i in range(4):
        wrong_login(client, f"guess{i}")
    assert good_login(client).status_code == 429


@pytest.mark.django_db
def test_two_hundred_correct_logins_from_one_address_all_succeed_on_the_shipped_defaults(db):
    names = [f"class-{i:03d}" for i in range(200)]
    for name in names:
        User.objects.create_user(username=name, password=PASSWORD)
    codes = {good_login(Client(REMOTE_ADDR="198.51.100.20"), name).status_code for name in names}
    assert codes == {HTTPStatus.FOUND}
    # None of them counted against the address: a typo from it is still just a form error.
    assert wrong_login(Client(REMOTE_ADDR="198.51.100.20"), names[0]).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_reading_the_login_page_is_never_limited(client, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = "1/m"
    wrong_login(client, "nobody")
    for _ in range(5):
        assert client.get(LOGIN).status_code == HTTPStatus.OK


# --- the admin's login: the same guess limits (issue: /admin/login/ was Django's stock, unlimited login) ----
ADMIN_LOGIN = reverse("admin:login")


def wrong_admin_login(client, username="teacher"):
    return client.post(ADMIN_LOGIN, {"username": username, "password": "wrong", "next": "/admin/"})


@pytest.mark.django_db
def test_eleven_wrong_passwords_at_the_admin_login_get_the_429_page(client, staff):
    codes = [wrong_admin_login(client).status_code for _ in range(10)]
    assert codes == [HTTPStatus.OK] * 10
    response = client.post(ADMIN_LOGIN, {"username": "teacher", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS  # refused before the password is checked
    assert 0 < int(response["Retry-After"]) <= 60
    assert [t.name for t in response.templates][0] == "429.html"
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_admin_login_and_the_portal_login_share_their_counters(client, staff, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "4/h"
    for _ in range(2):
        wrong_admin_login(client)
        wrong_login(client, "teacher")
    assert good_login(Client(), "teacher").status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert wrong_admin_login(Client()).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_wrong_names_at_the_admin_login_count_against_the_address(client, student, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = "3/h"
    for i in range(3):
        assert wrong_admin_login(client, f"guess{i}").status_code == HTTPStatus.OK
    assert good_login(client, "student9").status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_the_admin_login_still_logs_staff_in_and_only_staff(client, staff, student):
    page = client.get(reverse("admin:index"), follow=True)
    assert page.status_code == HTTPStatus.OK and "admin/login.html" in [t.name for t in page.templates]
    refused = client.post(ADMIN_LOGIN, {"username": "student9", "password": PASSWORD, "next": "/admin/"})
    assert refused.status_code == HTTPStatus.OK and "_auth_user_id" not in client.session
    assert refused.context["form"].has_error("__all__", "invalid_login")  # a student learns nothing more
    response = client.post(ADMIN_LOGIN, {"username": " Teacher", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == "/admin/"
    assert client.get(ADMIN_LOGIN)["Location"] == reverse("admin:index")  # logged in: on to the index


# --- login: device cookies -------------------------------------------------------------------------------
@pytest.fixture
def known_device(student):
    """The student's own browser: it logged in once (so it holds a device cookie), then logged out."""
    browser = Client()
    assert good_login(browser).status_code == HTTPStatus.FOUND
    assert DEVICE_COOKIE in browser.cookies
    browser.post(reverse("logout"))
    return browser


@pytest.mark.django_db
def test_someone_who_knows_a_name_cannot_lock_its_student_out_of_a_known_browser(client, known_device):
    for _ in range(10):
        wrong_login(client)  # the attacker, from a new device
    assert good_login(client).status_code == HTTPStatus.TOO_MANY_REQUESTS  # a new device still waits
    assert good_login(known_device).status_code == HTTPStatus.FOUND  # the student's own browser gets in


@pytest.mark.django_db
def test_failures_from_a_known_browser_are_limited_per_device(known_device, settings):
    settings.LOGIN_DEVICE_FAILURE_LIMIT = "3/h"
    for _ in range(3):
        assert wrong_login(known_device).status_code == HTTPStatus.OK
    assert good_login(known_device).status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert good_login(Client()).status_code == HTTPStatus.FOUND  # the username itself was not locked


@pytest.mark.django_db
def test_a_device_cookie_for_another_account_gives_no_exemption(student, settings):
    User.objects.create_user(username="attacker", password=PASSWORD)
    attacker = Client()
    good_login(attacker, "attacker")
    attacker.post(reverse("logout"))
    settings.LOGIN_USER_FAILURE_LIMIT = "3/h"
    for _ in range(3):
        wrong_login(attacker)
    assert good_login(attacker).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_a_forged_or_tampered_device_cookie_is_ignored(client, known_device, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "3/h"
    for _ in range(3):
        wrong_login(client)
    genuine = known_device.cookies[DEVICE_COOKIE].value
    client.cookies[DEVICE_COOKIE] = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")
    assert good_login(client).status_code == HTTPStatus.TOO_MANY_REQUESTS
    client.cookies[DEVICE_COOKIE] = '[["student9", "guessed-nonce"]]'
    assert good_login(client).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_the_device_cookie_is_http_only_and_sent_to_the_login_form_only(student):
    browser = Client()
    cookie = good_login(browser).cookies[DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == LOGIN
    assert int(cookie["max-age"]) == 365 * 86400


@pytest.mark.django_db
def test_one_browser_remembers_several_students(student):
    User.objects.create_user(username="deskmate", password=PASSWORD)
    shared = Client()
    good_login(shared)
    shared.post(reverse("logout"))
    good_login(shared, "deskmate")
    shared.post(reverse("logout"))
    request = RequestFactory().post(LOGIN)
    request.COOKIES[DEVICE_COOKIE] = shared.cookies[DEVICE_COOKIE].value
    assert throttle.trusted_device(request, "student9") and throttle.trusted_device(request, "deskmate")


# --- sign-up: wrong codes per address, successes bounded by max_uses -------------------------------------
@pytest.mark.django_db
def test_signup_is_limited_per_client_ip(client, signup_data, settings):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "2/h"
    client.post(SIGNUP, signup_data("first1", invite_code="WRONG"))
    client.post(SIGNUP, signup_data("second2", invite_code="WRONG"))
    response = client.post(SIGNUP, signup_data("third3"))
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 60


@pytest.mark.django_db
def test_thirty_wrong_codes_from_one_address_are_refused_on_the_shipped_defaults(client, signup_data):
    codes = [client.post(SIGNUP, signup_data(f"guess{i}", invite_code=f"NOPE-{i}")).status_code for i in range(30)]
    assert codes[:20] == [HTTPStatus.OK] * 20
    assert set(codes[20:]) == {HTTPStatus.TOO_MANY_REQUESTS}


@pytest.mark.django_db
def test_two_hundred_signups_with_one_code_from_one_address_all_succeed(make_invite, settings):
    invite = make_invite(code="CLASS-200", max_uses=200)
    codes = set()
    for i in range(200):
        data = {"username": f"pupil-{i:03d}", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "class-200"}
        codes.add(Client(REMOTE_ADDR="198.51.100.30").post(SIGNUP, data).status_code)
    assert codes == {HTTPStatus.FOUND}
    invite.refresh_from_db()
    assert invite.use_count == 200


@pytest.mark.django_db
def test_a_codes_max_uses_is_the_only_bound_on_correct_signups(client, make_invite, settings):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "1/h"
    make_invite(code="THREE-SEATS", max_uses=3)
    for i in range(5):
        data = {"username": f"seat-{i}", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "THREE-SEATS"}
        response = Client().post(SIGNUP, data)
        expected = HTTPStatus.FOUND if i < 3 else HTTPStatus.OK  # used up: a form error, not a 429
        assert response.status_code == expected, i
    assert User.objects.count() == 3


@pytest.mark.django_db
def test_a_password_mismatch_is_not_counted_as_a_code_guess(client, signup_data, settings):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "1/h"
    for _ in range(3):
        response = client.post(SIGNUP, signup_data(password2="something-else-entirely"))
        assert response.status_code == HTTPStatus.OK and "password2" in response.context["form"].errors
    assert client.post(SIGNUP, signup_data()).status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_signup_limit_counts_each_forwarded_client_separately(client, signup_data, settings):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "1/h"
    settings.PROXY_SECRET = PROXY_SECRET
    via_proxy = {"HTTP_X_CFPS_PROXY": PROXY_SECRET}
    first = client.post(
        SIGNUP, signup_data("first1", invite_code="WRONG"), HTTP_X_FORWARDED_FOR="203.0.113.5", **via_proxy
    )
    other = client.post(SIGNUP, signup_data("second2"), HTTP_X_FORWARDED_FOR="203.0.113.6", **via_proxy)
    assert first.status_code == HTTPStatus.OK
    assert other.status_code == HTTPStatus.FOUND


# --- the client's address --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "proxy_header", "real_ip", "forwarded_for", "expected"),
    [
        # Without our proxies' secret every forwarded header is ignored, from loopback too (a notebook, any
        # local process, or a client straight at the portal's port could have written it).
        ("127.0.0.1", None, "203.0.113.9", "", "127.0.0.1"),
        ("127.0.0.1", None, "", "203.0.113.5", "127.0.0.1"),
        ("198.51.100.7", None, "203.0.113.9", "203.0.113.8", "198.51.100.7"),
        ("127.0.0.1", "a-guessed-secret", "203.0.113.9", "203.0.113.5", "127.0.0.1"),
        ("127.0.0.1", PROXY_SECRET[:-1], "", "203.0.113.5", "127.0.0.1"),
        # Through our proxy: the right-most entry, the one it wrote.
        ("127.0.0.1", PROXY_SECRET, "", "203.0.113.5", "203.0.113.5"),  # the Python proxy replaced the header
        ("127.0.0.1", PROXY_SECRET, "", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # Node / Nginx appended
        ("127.0.0.1", PROXY_SECRET, "6.6.6.6", "203.0.113.5", "203.0.113.5"),  # X-Real-IP is never read
        ("::1", PROXY_SECRET, "", "2001:db8::1", "2001:db8::1"),
        ("127.0.0.1", PROXY_SECRET, "203.0.113.9", "", "127.0.0.1"),  # no X-Forwarded-For: the peer
        ("127.0.0.1", PROXY_SECRET, "", "203.0.113.5, garbage", "127.0.0.1"),  # unparsable: the peer
    ],
)
def test_client_ip_believes_x_forwarded_for_only_with_our_proxies_secret(
    settings, peer, proxy_header, real_ip, forwarded_for, expected
):
    settings.PROXY_SECRET = PROXY_SECRET
    headers = {"HTTP_X_REAL_IP": real_ip, "HTTP_X_FORWARDED_FOR": forwarded_for}
    if proxy_header is not None:
        headers["HTTP_X_CFPS_PROXY"] = proxy_header
    request = RequestFactory().get("/", REMOTE_ADDR=peer, **headers)
    assert client_ip(request) == expected


def test_an_empty_proxy_secret_trusts_no_header(settings):
    settings.PROXY_SECRET = ""
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_CFPS_PROXY="", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert client_ip(request) == "127.0.0.1"


@pytest.mark.django_db
def test_forged_forwarding_headers_straight_at_the_portal_do_not_reset_the_wrong_code_limit(
    client, signup_data, settings
):
    settings.SIGNUP_CODE_FAILURE_LIMIT = "3/h"
    codes = []
    for i in range(6):
        forged = {"HTTP_X_FORWARDED_FOR": f"203.0.113.{i}", "HTTP_X_REAL_IP": f"198.51.100.{i}"}
        codes.append(client.post(SIGNUP, signup_data(f"forger{i}", invite_code=f"BAD-{i}"), **forged).status_code)
    assert codes == [HTTPStatus.OK] * 3 + [HTTPStatus.TOO_MANY_REQUESTS] * 3


# --- the shared cache: Redis, and when it is down ----------------------------------------------------------
@pytest.fixture
def own_redis(tmp_path, settings):
    """A redis-server of this test's own on a free port (never the shared one on 6379), as the "default"
    cache; yields a function that stops it."""
    binary = shutil.which("redis-server")
    if not binary:
        message = "redis-server is missing: apt-get install redis-server"
        pytest.skip(message)
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server on port {port} did not start")
            time.sleep(0.05)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }

    def stop():
        proc.terminate()
        proc.wait(timeout=10)

    yield stop
    if proc.poll() is None:
        stop()


@pytest.mark.django_db
def test_counts_live_in_redis_where_a_restarted_portal_finds_them(client, student, settings, own_redis):
    from django.core.cache import caches

    settings.LOGIN_USER_FAILURE_LIMIT = "2/h"
    wrong_login(client)
    wrong_login(client)
    # A new portal process opens a new connection; the counts are in Redis, not in the old process.
    restarted = caches.create_connection("default")
    assert restarted.get(throttle.Counter("login-user", "student9", "LOGIN_USER_FAILURE_LIMIT").key) == 2
    assert good_login(Client()).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_a_cache_outage_refuses_password_and_code_checks_with_503_and_a_log_line(
    client, student, signup_data, settings, own_redis, caplog
):
    own_redis()
    with caplog.at_level(logging.ERROR, logger="accounts.throttle"):
        wrong = wrong_login(client)
        correct = good_login(Client())
        signup = Client().post(SIGNUP, signup_data("newcomer"))
    for response in (wrong, correct, signup):
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response["Retry-After"] == "60"
    assert not User.objects.filter(username="newcomer").exists()
    lines = [r.getMessage() for r in caplog.records if "rate-limit cache unavailable" in r.getMessage()]
    assert len(lines) == 3 and "login" in lines[0] and "sign-up" in lines[2]
    english = Client(headers={"Accept-Language": "en"}).post(LOGIN, {"username": "x", "password": "y"})
    assert "try again in a minute" in english.content.decode()


@pytest.mark.django_db
def test_a_cache_outage_leaves_pages_and_logged_in_students_alone(student, settings, own_redis):
    browser = Client()
    assert good_login(browser).status_code == HTTPStatus.FOUND
    own_redis()
    assert browser.get(reverse("home")).context["user"].username == "student9"
    assert Client().get(LOGIN).status_code == HTTPStatus.OK
    assert Client().get(SIGNUP).status_code == HTTPStatus.OK


# --- password checks at once (accounts/hashers.py) ------------------------------------------------------
def test_no_more_password_checks_run_at_once_than_the_setting_allows(settings):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.contrib.auth import hashers as django_hashers

    from accounts.hashers import PBKDF2PasswordHasher

    class Recording(django_hashers.PBKDF2PasswordHasher):
        lock, running, most = threading.Lock(), 0, 0

        def encode(self, password, salt, iterations=None):
            with Recording.lock:
                Recording.running += 1
                Recording.most = max(Recording.most, Recording.running)
            time.sleep(0.05)  # long enough that unbounded checks would overlap
            try:
                return super().encode(password, salt, 1000)
            finally:
                with Recording.lock:
                    Recording.running -= 1

    class Bounded(PBKDF2PasswordHasher, Recording):
        pass

    settings.PASSWORD_CHECKS_AT_ONCE = 2
    hasher = Bounded()
    encoded = hasher.encode(PASSWORD, "somesalt")
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda _: hasher.verify(PASSWORD, encoded), range(16)))
    assert Recording.most == 2
    assert encoded.startswith("pbkdf2_sha256$")  # Django's own format: existing hashes keep working


def test_a_waiting_password_check_is_not_overtaken_by_a_later_one():
    # Regression: with threading.Semaphore, a check arriving just as a slot was freed took it from the one
    # woken for it; in a steady stream of logins one student waited past the proxy's 20 s timeout (a 503).
    import threading

    from accounts.hashers import CheckSlots

    slots, order = CheckSlots(1), []

    def waiter():
        with slots:
            order.append("waiting one")

    slots.__enter__()
    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 5
    while slots.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert slots.waiting == 1
    slots.__exit__(None, None, None)
    with slots:  # arrives right after the release, before the woken thread has run
        order.append("later one")
    thread.join(timeout=5)
    assert order == ["waiting one", "later one"]
