"""Deactivating students: the admin action asks first; a deactivated student who logs in with the right password
is told to ask the teacher, and is never logged in; a wrong password (or a name nobody has) gets the usual
error, so nobody learns that an account exists without its password, and every answer costs one password
check; the login throttle counts these attempts as before."""

import threading
from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.urls import reverse

from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db
LOGIN = reverse("login")
USERS = reverse("admin:accounts_user_changelist")
DEACTIVATED = "此账号已被停用，请联系老师。"
WRONG = "用户名或密码不正确。注意密码区分大小写。"


class CountingHasher(MD5PasswordHasher):
    """The test settings' hasher, counting every hash it computes (a check or a dummy one)."""

    calls = threading.local()

    def encode(self, password, salt):
        CountingHasher.calls.n = getattr(CountingHasher.calls, "n", 0) + 1
        return super().encode(password, salt)


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.accounts.test_deactivation.CountingHasher"]

    def count(action):
        CountingHasher.calls.n = 0
        result = action()
        return result, CountingHasher.calls.n

    return count


@pytest.fixture
def gone(db):
    return User.objects.create_user(username="s2026077", first_name="赵六", password=PASSWORD, is_active=False)


def login(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password})


def errors(response) -> str:
    return " ".join(response.context["form"].non_field_errors())


# --- the action asks first --------------------------------------------------------------------------------
def test_deactivating_asks_for_confirmation_first_and_changes_nothing(client, staff, student):
    client.force_login(staff)
    response = client.post(USERS, {"action": "deactivate_users", ACTION_CHECKBOX_NAME: [student.pk]})
    assert response.status_code == HTTPStatus.OK
    assert response.templates[0].name == "admin/accounts/user/action_step.html"
    page = response.content.decode()
    assert "停用用户" in page and "文件会保留" in page and "deletelink" in page and student.username in page
    student.refresh_from_db()
    assert student.is_active


def test_confirming_deactivates_the_selection_but_never_oneself(client, staff, student):
    client.force_login(staff)
    data = {"action": "deactivate_users", ACTION_CHECKBOX_NAME: [student.pk, staff.pk]}
    confirm = client.post(USERS, data)
    assert [user.pk for user in confirm.context["queryset"]] == [student.pk]  # only the student is offered
    done = client.post(USERS, {**data, "apply": "1"}, follow=True)
    assert "已停用 1 个用户。" in done.content.decode()
    student.refresh_from_db()
    staff.refresh_from_db()
    assert (student.is_active, staff.is_active) == (False, True)


def test_a_ta_confirms_for_students_only(client, make_staff, student):
    teacher = make_staff("laoshi", "teacher")
    client.force_login(make_staff("zhujiao", "ta"))
    data = {"action": "deactivate_users", ACTION_CHECKBOX_NAME: [student.pk, teacher.pk]}
    assert [user.pk for user in client.post(USERS, data).context["queryset"]] == [student.pk]
    client.post(USERS, {**data, "apply": "1"})
    assert list(User.objects.filter(is_active=False)) == [student]


def test_nothing_to_deactivate_needs_no_confirmation(client, staff, gone):
    client.force_login(staff)
    response = client.post(USERS, {"action": "deactivate_users", ACTION_CHECKBOX_NAME: [gone.pk]}, follow=True)
    assert "已停用 0 个用户。" in response.content.decode()


# --- what a deactivated student is told -------------------------------------------------------------------
def test_a_deactivated_student_with_the_right_password_is_told_to_contact_the_teacher(client, gone):
    response = login(client, "S2026077", PASSWORD)
    assert response.status_code == HTTPStatus.OK
    assert errors(response) == DEACTIVATED
    assert response.context["form"].has_error("__all__", "inactive")
    assert "_auth_user_id" not in client.session
    assert not client.get(reverse("home")).context["user"].is_authenticated


@pytest.mark.parametrize(
    ("username", "password"),
    [("s2026077", "Not-the-password-1"), ("nobody-here", PASSWORD), ("nobody-here", "Not-the-password-1")],
    ids=["deactivated, wrong password", "no such account", "no such account, other password"],
)
def test_without_the_right_password_nobody_learns_the_account_exists(client, gone, username, password):
    response = login(client, username, password)
    assert errors(response) == WRONG
    assert response.context["form"].has_error("__all__", "invalid_login")
    assert "停用" not in response.content.decode()


def test_every_login_answer_costs_exactly_one_password_check(client, counting_hasher, gone, student):
    # A second check for inactive accounts would make their answer measurably slower: an oracle for names
    # (accounts waiting for approval used to get one).
    User.objects.create_user(username="waiter", password=PASSWORD, is_active=False, awaiting_approval=True)
    cases = {
        "waiting for approval, right password": ("waiter", PASSWORD),
        "waiting for approval, wrong password": ("waiter", "Not-the-password-1"),
        "deactivated, right password": ("s2026077", PASSWORD),
        "deactivated, wrong password": ("s2026077", "Not-the-password-1"),
        "active, wrong password": (student.username, "Not-the-password-1"),
        "no such account": ("nobody-here", PASSWORD),
    }
    for case, (username, password) in cases.items():
        response, checks = counting_hasher(lambda u=username, p=password: login(client, u, p))
        assert response.status_code == HTTPStatus.OK, case
        assert checks == 1, f"{case}: {checks} password checks"


def test_a_deactivated_student_cannot_log_in_even_with_the_form_valid_path(client, gone):
    # The form never hands an inactive user to login(): neither through clean() nor through get_user().
    from accounts.forms import LoginForm

    form = LoginForm(data={"username": "s2026077", "password": PASSWORD})
    assert not form.is_valid() and form.get_user() is None


def test_a_reactivated_student_logs_in_again(client, gone):
    gone.is_active = True
    gone.save()
    assert login(client, "s2026077", PASSWORD).status_code == HTTPStatus.FOUND
    assert client.get(reverse("home")).context["user"] == gone


def test_the_throttle_counts_a_deactivated_account_s_attempts_as_before(client, gone, settings):
    settings.LOGIN_USER_FAILURE_LIMIT = "3/h"
    for password in ("Not-the-password-1", PASSWORD, "Not-the-password-2"):
        assert login(client, "s2026077", password).status_code == HTTPStatus.OK
    assert login(client, "s2026077", PASSWORD).status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_the_login_page_no_longer_says_usernames_are_case_sensitive(client, student):
    page = login(client, student.username, "Not-the-password-1").content.decode()
    assert "两者都区分大小写" not in page and "密码区分大小写" in page
    assert login(client, student.username.upper(), PASSWORD).status_code == HTTPStatus.FOUND  # it is not
