"""Set-password links (7 days, once) and staff-given temporary passwords (must be changed at the next login)."""

from datetime import datetime, timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts import setpassword

User = get_user_model()
pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Survey-panel-2026"


@pytest.fixture
def pupil(db):
    user = User(username="xiaohong", first_name="小红")
    user.set_unusable_password()
    user.save()
    return user


def choose_password(client, link_path, password=NEW_PASSWORD):
    """Open the link as a student would: the token moves to the session, then the form is posted."""
    form_page = client.get(link_path, follow=True)
    assert form_page.context["validlink"], "the link was refused"
    return client.post(form_page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password})


def test_a_link_lets_the_student_choose_a_password_and_lands_logged_in_on_home(client, pupil):
    response = choose_password(client, setpassword.link_path(pupil))
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("home")
    home = client.get(reverse("home"))
    assert home.context["user"] == pupil and home.context["user"].is_authenticated
    pupil.refresh_from_db()
    assert pupil.check_password(NEW_PASSWORD)


def test_a_link_works_only_once(client, pupil):
    path = setpassword.link_path(pupil)
    choose_password(client, path)
    client.logout()
    again = client.get(path, follow=True)
    assert not again.context["validlink"]
    assert "无法使用" in again.content.decode()  # "This link cannot be used", in Chinese by default


def test_a_link_older_than_seven_days_is_refused(client, pupil):
    gen = setpassword.token_generator
    eight_days_ago = gen._num_seconds(datetime.now() - timedelta(days=8))
    token = gen._make_token_with_timestamp(pupil, eight_days_ago, gen.secret)
    assert not gen.check_token(pupil, token)
    six_days_ago = gen._num_seconds(datetime.now() - timedelta(days=6))
    assert gen.check_token(pupil, gen._make_token_with_timestamp(pupil, six_days_ago, gen.secret))


def test_a_link_is_not_an_email_reset_token_and_the_reverse(pupil):
    from django.contrib.auth.tokens import default_token_generator

    assert not default_token_generator.check_token(pupil, setpassword.token_generator.make_token(pupil))
    assert not setpassword.token_generator.check_token(pupil, default_token_generator.make_token(pupil))


def test_a_deactivated_account_cannot_use_its_link(client, pupil):
    path = setpassword.link_path(pupil)
    pupil.is_active = False
    pupil.save()
    assert not client.get(path, follow=True).context["validlink"]


def test_a_tampered_uid_is_refused(client, pupil):
    other = User.objects.create_user(username="other-one", password="x")
    token = setpassword.token_generator.make_token(pupil)
    path = reverse("set_password", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(other.pk)), "token": token})
    assert not client.get(path, follow=True).context["validlink"]


def test_a_weak_password_is_refused_beside_the_field(client, pupil):
    response = choose_password(client, setpassword.link_path(pupil), password="123")
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["new_password1"] and "new_password2" not in response.context["form"].errors


def test_only_superusers_may_issue_links_for_staff_accounts(staff):
    helper = User.objects.create_user(username="assistant", password="x", is_staff=True)
    pupil = User.objects.create_user(username="pupil-a", password="x")
    assert setpassword.may_issue(helper, pupil)
    assert not setpassword.may_issue(helper, staff)
    assert setpassword.may_issue(staff, helper)


def test_a_temporary_password_sends_the_student_to_change_it_until_they_do(client, pupil):
    temporary = setpassword.set_temporary_password(pupil)
    assert client.login(username="xiaohong", password=temporary)
    for path in (reverse("home"), reverse("admin:index"), "/o/authorize/?client_id=x"):
        response = client.get(path)
        assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("password_change"), path
    assert client.get(reverse("password_change")).status_code == HTTPStatus.OK
    response = client.post(
        reverse("password_change"),
        {"old_password": temporary, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == HTTPStatus.FOUND
    pupil.refresh_from_db()
    assert not pupil.must_change_password and pupil.check_password(NEW_PASSWORD)
    assert client.get(reverse("home")).status_code == HTTPStatus.OK


def test_a_temporary_password_can_log_out(client, pupil):
    client.login(username="xiaohong", password=setpassword.set_temporary_password(pupil))
    assert client.post(reverse("logout")).status_code == HTTPStatus.FOUND
    assert "_auth_user_id" not in client.session


def test_temporary_passwords_are_readable_from_paper():
    for _ in range(50):
        password = setpassword.temporary_password()
        assert len(password) == setpassword.TEMPORARY_LENGTH
        assert not set(password) & set("0O1lI")
