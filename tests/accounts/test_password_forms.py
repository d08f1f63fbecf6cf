"""Where password errors appear, and the forced change after a temporary password.

- A weak password is refused under the first password field (密码 / 新密码), the one the person chose, on every
  form that sets one; "did not match" stays under the confirmation.
- After logging in with a temporary password, the change page does not ask for it again, but only in the
  session that logged in with it: elsewhere the old password is asked as usual.
"""

from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts import setpassword
from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db
CHANGE = reverse("password_change")
NEW = "Survey-panel-2026"
WEAK = {"too short": "a1b2", "all digits": "839201746655", "too common": "password123"}


@pytest.mark.parametrize("weak", WEAK.values(), ids=WEAK.keys())
def test_sign_up_puts_a_weak_password_s_error_under_the_password(client, signup_data, weak):
    form = client.post(reverse("signup"), signup_data(password1=weak, password2=weak)).context["form"]
    assert list(form.errors) == ["password1"]


def test_sign_up_keeps_a_mismatch_under_the_confirmation_and_both_when_both(client, signup_data):
    form = client.post(reverse("signup"), signup_data(password2="Cfps-analysis-2099")).context["form"]
    assert list(form.errors) == ["password2"]
    form = client.post(reverse("signup"), signup_data(password1="a1b2", password2="a1b3")).context["form"]
    assert set(form.errors) == {"password1", "password2"}


def test_the_password_change_puts_a_weak_password_s_error_under_the_new_password(client, student):
    client.force_login(student)
    data = {"old_password": PASSWORD, "new_password1": "a1b2", "new_password2": "a1b2"}
    response = client.post(CHANGE, data)
    assert response.status_code == HTTPStatus.OK
    assert list(response.context["form"].errors) == ["new_password1"]
    assert 'id="id_new_password1_error"' in response.content.decode()


def test_the_e_mail_reset_puts_a_weak_password_s_error_under_the_new_password(client, student):
    uid = urlsafe_base64_encode(force_bytes(student.pk))
    link = reverse(
        "password_reset_confirm", kwargs={"uidb64": uid, "token": default_token_generator.make_token(student)}
    )
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "a1b2", "new_password2": "a1b2"})
    assert list(response.context["form"].errors) == ["new_password1"]


def test_the_admin_password_page_puts_it_under_the_password(client, staff, student):
    client.force_login(staff)
    url = reverse("admin:auth_user_password_change", args=[student.pk])
    response = client.post(url, {"password1": "a1b2", "password2": "a1b2", "usable_password": "true"})
    assert response.status_code == HTTPStatus.OK
    assert list(response.context["form"].errors) == ["password1"]


def test_the_admin_add_form_puts_it_under_the_password(client, staff):
    client.force_login(staff)
    data = {"username": "newbie", "password1": "a1b2", "password2": "a1b2", "usable_password": "true"}
    response = client.post(reverse("admin:accounts_user_add"), data)
    assert list(response.context["adminform"].form.errors) == ["password1"]


# --- the forced change after a temporary password -----------------------------------------------------------
def log_in_with_a_temporary_password(client, user) -> str:
    temporary = setpassword.set_temporary_password(user)
    response = client.post(reverse("login"), {"username": user.username, "password": temporary})
    assert response.status_code == HTTPStatus.FOUND
    return temporary


def test_after_a_temporary_password_the_change_does_not_ask_for_it_again(client, student):
    log_in_with_a_temporary_password(client, student)
    page = client.get(CHANGE)
    assert "old_password" not in page.context["form"].fields
    assert 'name="old_password"' not in page.content.decode()
    response = client.post(CHANGE, {"new_password1": NEW, "new_password2": NEW})
    assert response.status_code == HTTPStatus.FOUND
    student.refresh_from_db()
    assert student.check_password(NEW) and not student.must_change_password
    assert client.get(reverse("home")).context["user"] == student  # still logged in, free to go on
    # From now on the old password is asked again, as for everyone.
    assert "old_password" in client.get(CHANGE).context["form"].fields


def test_a_weak_new_password_is_still_refused_there(client, student):
    log_in_with_a_temporary_password(client, student)
    response = client.post(CHANGE, {"new_password1": "a1b2", "new_password2": "a1b2"})
    assert list(response.context["form"].errors) == ["new_password1"]
    student.refresh_from_db()
    assert student.must_change_password


def test_a_session_that_did_not_log_in_with_it_must_give_the_old_password(client, student):
    # The attack: a browser left logged in (with the student's own password) when a superuser ticks "must
    # change password". Whoever sits at it must not be able to take the account over without the password.
    client.force_login(student)
    student.must_change_password = True
    student.save(update_fields=["must_change_password"])
    assert client.get(reverse("home"))["Location"] == CHANGE  # sent to the change page, as before
    assert "old_password" in client.get(CHANGE).context["form"].fields
    response = client.post(CHANGE, {"new_password1": NEW, "new_password2": NEW})
    assert response.context["form"].has_error("old_password", "required")
    student.refresh_from_db()
    assert student.check_password(PASSWORD)


def test_the_mark_dies_with_the_temporary_password(client, student):
    # Logged in with a temporary password and changed it: a later tick in this same session asks again.
    log_in_with_a_temporary_password(client, student)
    client.post(CHANGE, {"new_password1": NEW, "new_password2": NEW})
    student.refresh_from_db()
    student.must_change_password = True
    student.save(update_fields=["must_change_password"])
    assert "old_password" in client.get(CHANGE).context["form"].fields
