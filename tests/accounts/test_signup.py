"""Sign-up: the happy path, safe redirects, and a table of hostile inputs that must each end in a form
error beside the right field, never a 5xx."""

from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import InviteRedemption
from tests.conftest import PASSWORD

User = get_user_model()
SIGNUP = reverse("signup")


@pytest.mark.django_db
def test_signup_creates_logged_in_user_and_records_the_invite(client, signup_data, invite):
    response = client.post(SIGNUP, signup_data("Student1"))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("home")
    user = User.objects.get()
    assert user.username == "student1"
    assert client.get(reverse("home")).context["user"] == user
    redemption = InviteRedemption.objects.get()
    assert (redemption.user, redemption.invite) == (user, invite)
    invite.refresh_from_db()
    assert invite.use_count == 1


@pytest.mark.django_db
def test_signup_redirects_to_a_safe_next(client, signup_data):
    response = client.post(SIGNUP + "?next=/jupyter/hub/", signup_data())
    assert response["Location"] == "/jupyter/hub/"


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"])
def test_signup_ignores_an_unsafe_next(client, signup_data, target):
    response = client.post(SIGNUP, {**signup_data(), "next": target})
    assert response["Location"] == reverse("home")


@pytest.mark.django_db
def test_case_variant_of_an_existing_username_is_refused(client, signup_data, invite):
    assert client.post(SIGNUP, signup_data("lihua")).status_code == HTTPStatus.FOUND
    client.logout()
    response = client.post(SIGNUP, signup_data("LiHua"))
    assert response.status_code == HTTPStatus.OK
    assert "username" in response.context["form"].errors
    assert User.objects.count() == 1
    invite.refresh_from_db()
    assert invite.use_count == 1


# --- nothing about other accounts before the invite code is right (issue 20.7) ------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "error"),
    [("", "required"), ("NO-SUCH-CODE", "unknown"), ("EXPIRED-2025", "expired"), ("USED-UP-2026", "used_up")],
)
@pytest.mark.parametrize("name", ["lihua", "LiHua", "retired-one"])
def test_a_taken_or_retired_username_is_not_revealed_without_a_usable_code(
    client, signup_data, make_invite, code, error, name
):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import RetiredUsername

    User.objects.create_user(username="lihua", password=PASSWORD)
    RetiredUsername.objects.create(username="retired-one", reason="deleted")
    make_invite(code="EXPIRED-2025", expires_at=timezone.now() - timedelta(days=1))
    make_invite(code="USED-UP-2026", max_uses=1, use_count=1)
    response = client.post(SIGNUP, signup_data(name, invite_code=code))
    form = response.context["form"]
    assert form.has_error("invite_code", error), form.errors.as_data()
    assert "username" not in form.errors, form.errors  # taken or free: the same page for both
    free = client.post(SIGNUP, signup_data("nobody-has-this", invite_code=code)).context["form"]
    assert free.errors.keys() == form.errors.keys()


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "code"), [("lihua", "unique"), ("retired-one", "retired")])
def test_with_a_usable_code_a_taken_or_retired_username_is_refused_beside_the_field(client, signup_data, name, code):
    from accounts.models import RetiredUsername

    User.objects.create_user(username="lihua", password=PASSWORD)
    RetiredUsername.objects.create(username="retired-one", reason="deleted")
    form = client.post(SIGNUP, signup_data(name.upper())).context["form"]
    assert form.has_error("username", code) and list(form.errors) == ["username"], form.errors


@pytest.mark.django_db
def test_failed_signup_does_not_consume_an_invite_use(client, signup_data, invite):
    client.post(SIGNUP, signup_data(password2="something-else-entirely"))
    invite.refresh_from_db()
    assert invite.use_count == 0
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_page_renders_every_field(client):
    response = client.get(SIGNUP)
    assert response.status_code == HTTPStatus.OK
    for name in ("username", "password1", "password2", "invite_code"):
        assert f'name="{name}"' in response.text


LONG = "x" * 10_000
BAD_INPUTS = [
    # (case id, overrides, field that must carry the error)
    ("empty username", {"username": ""}, "username"),
    ("blank username", {"username": "   "}, "username"),
    ("too long username", {"username": "a" * 33}, "username"),
    ("huge username", {"username": LONG}, "username"),
    ("reserved username", {"username": "Admin"}, "username"),
    ("cyrillic look-alike", {"username": "аdmin"}, "username"),
    ("zero-width joiner", {"username": "ab\u200dc"}, "username"),
    ("emoji", {"username": "cat🐱"}, "username"),
    ("chinese", {"username": "学生一号"}, "username"),
    ("null byte", {"username": "abc\x00def"}, "username"),
    ("sql injection", {"username": "x' OR '1'='1"}, "username"),
    ("sql drop", {"username": "a;DROP TABLE accounts_user;--"}, "username"),
    ("html injection", {"username": "<script>alert(1)</script>"}, "username"),
    ("empty password", {"password1": "", "password2": ""}, "password1"),
    ("mismatched passwords", {"password2": "Cfps-analysis-2027"}, "password2"),
    ("short password", {"password1": "a1b2", "password2": "a1b2"}, "password1"),
    ("numeric password", {"password1": "839201746655", "password2": "839201746655"}, "password1"),
    ("common password", {"password1": "password123", "password2": "password123"}, "password1"),
    (
        "password like username",
        {"username": "zhangwei", "password1": "zhangwei1", "password2": "zhangwei1"},
        "password1",
    ),
    ("null byte password", {"password1": "abc\x00defghij", "password2": "abc\x00defghij"}, "password1"),
    ("empty invite", {"invite_code": ""}, "invite_code"),
    ("unknown invite", {"invite_code": "NOPE-NOPE"}, "invite_code"),
    ("huge invite", {"invite_code": LONG}, "invite_code"),
    ("sql invite", {"invite_code": "' OR 1=1 --"}, "invite_code"),
    ("html invite", {"invite_code": "<b>x</b>"}, "invite_code"),
    ("list username", {"username": ["a", "b"]}, "username"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_form_error_beside_its_field(client, signup_data, invite, overrides, field):
    response = client.post(SIGNUP, signup_data(**overrides))
    assert response.status_code == HTTPStatus.OK
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert f'id="id_{field}_error"' in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert not User.objects.exists()
    invite.refresh_from_db()
    assert invite.use_count == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"username=%FF%FE&password1=x&password2=x&invite_code=x",
        b"\xff\xfe\x00garbage",
        b"username[]=a&username[]=b",
    ],
    ids=["no body", "invalid utf-8 escapes", "binary", "php-style arrays"],
)
def test_malformed_bodies_never_cause_a_server_error(client, invite, body):
    response = client.post(SIGNUP, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors
    assert not User.objects.exists()


@pytest.mark.django_db
def test_wrong_content_type_is_a_form_error_not_a_crash(client, invite):
    response = client.post(SIGNUP, {"username": 1, "password1": 2}, content_type="application/json")
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors


@pytest.mark.django_db
def test_login_accepts_the_username_in_any_case(client, student):
    response = client.post(reverse("login"), {"username": "  STUDENT9 ", "password": PASSWORD})
    assert response.status_code == HTTPStatus.FOUND
    assert client.get(reverse("home")).context["user"] == student


@pytest.mark.django_db
def test_wrong_password_shows_an_error_not_a_crash(client, student):
    response = client.post(reverse("login"), {"username": "student9", "password": "wrong"})
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].non_field_errors()


@pytest.mark.django_db
def test_password_change_works_for_a_student(client, student):
    client.force_login(student)
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "Another-pass-2026", "new_password2": "Another-pass-2026"},
    )
    assert response.status_code == HTTPStatus.FOUND
    student.refresh_from_db()
    assert student.check_password("Another-pass-2026")


@pytest.mark.django_db
def test_logout_is_a_post_and_ends_the_session_then_the_hubs(client, student, settings):
    client.force_login(student)
    response = client.post(reverse("logout"))
    assert response.status_code == HTTPStatus.FOUND
    # On to the hub's logout (its own host), which comes back to the portal's home.
    assert response["Location"] == settings.TOPOLOGY.hub_logout_url == "http://localhost:8000/jupyter/hub/logout"
    assert not client.get(reverse("home")).context["user"].is_authenticated


@pytest.mark.django_db
@pytest.mark.parametrize("fetch_site", ["same-origin", "none"], ids=["click on this origin", "typed by the user"])
def test_logout_by_get_from_this_origin_or_the_user_logs_out(client, student, fetch_site):
    client.force_login(student)
    response = client.get(reverse("logout"), HTTP_SEC_FETCH_SITE=fetch_site)
    assert response.status_code == HTTPStatus.FOUND
    assert not client.get(reverse("home")).context["user"].is_authenticated


@pytest.mark.django_db
@pytest.mark.parametrize("fetch_site", [None, "cross-site", "same-site"])
def test_logout_by_get_from_elsewhere_asks_for_confirmation_and_keeps_the_session(client, student, fetch_site):
    client.force_login(student)
    headers = {"HTTP_SEC_FETCH_SITE": fetch_site} if fetch_site else {}
    response = client.get(reverse("logout"), **headers)
    assert response.status_code == HTTPStatus.OK
    assert 'method="post"' in response.text
    assert client.get(reverse("home")).context["user"] == student


@pytest.mark.django_db
def test_unknown_page_renders_our_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"cfps_language" not in response.content
    assert reverse("home") in response.text
