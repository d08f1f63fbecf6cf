"""Invite codes: each failure mode has its own message on the invite-code field, codes match regardless of
case and spaces, groups are joined, and a code with N uses yields exactly N accounts under concurrency."""

import threading
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import InviteCode, InviteRedemption
from tests.conftest import PASSWORD

User = get_user_model()
SIGNUP = reverse("signup")


def error_on_invite_field(client, data):
    response = client.post(SIGNUP, data)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors.as_data().get("invite_code", [])
    assert errors, response.context["form"].errors
    return errors[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"is_active": False}, "inactive", "deactivated"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expired", "expired"),
        ({"max_uses": 2, "use_count": 2}, "used_up", "used up"),
    ],
    ids=["inactive", "expired", "used up"],
)
def test_unusable_invite_gets_its_own_message(client, make_invite, fields, code, words):
    invite = make_invite(code="SPRING", **fields)
    error = error_on_invite_field(
        client, {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD, "invite_code": invite.code}
    )
    assert error.code == code
    with_english = client.post(
        SIGNUP,
        {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD, "invite_code": invite.code},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert words in with_english.text
    assert not User.objects.exists()


@pytest.mark.django_db
def test_unknown_invite_gets_its_own_message(client, signup_data):
    error = error_on_invite_field(client, signup_data(invite_code="NO-SUCH-CODE"))
    assert error.code == "unknown"


@pytest.mark.django_db
def test_each_failure_mode_has_a_distinct_message(make_invite):
    invites = [
        make_invite(code="A1", is_active=False),
        make_invite(code="A2", expires_at=timezone.now() - timedelta(days=1)),
        make_invite(code="A3", max_uses=1, use_count=1),
    ]
    messages = {str(invite.problem().messages[0]) for invite in invites}
    with pytest.raises(Exception) as unknown:
        InviteCode.check_code("ZZZ")
    messages.add(str(unknown.value.messages[0]))
    assert len(messages) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["class-2026", "  CLASS-2026  ", "Class-2026\t", "class - 2026"])
def test_invite_matches_regardless_of_case_and_spaces(client, signup_data, typed):
    response = client.post(SIGNUP, signup_data(invite_code=typed))
    assert response.status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_code_is_stored_normalised(make_invite):
    assert make_invite(code="  spring 2026 ").code == "SPRING2026"


@pytest.mark.django_db
def test_default_code_is_random_and_unambiguous(make_invite):
    codes = {make_invite().code for _ in range(20)}
    assert len(codes) == 20
    assert all(len(c) == 10 and not set(c) & set("01OIL") for c in codes)


@pytest.mark.django_db
def test_expiry_in_the_future_still_works(client, make_invite):
    make_invite(code="LATER", expires_at=timezone.now() + timedelta(hours=1))
    data = {"username": "later", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "later"}
    assert client.post(SIGNUP, data).status_code == HTTPStatus.FOUND


@pytest.mark.django_db
def test_new_user_joins_the_invites_group(client, make_invite):
    team = Group.objects.create(name="team-income")
    make_invite(code="TEAM", group=team)
    client.post(SIGNUP, {"username": "member", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "team"})
    assert list(User.objects.get(username="member").groups.all()) == [team]


@pytest.mark.django_db
def test_unlimited_code_counts_uses(client, make_invite):
    invite = make_invite(code="OPEN", max_uses=None)
    for i in range(3):
        Client().post(
            SIGNUP, {"username": f"open{i}", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "open"}
        )
    invite.refresh_from_db()
    assert invite.use_count == 3
    assert invite.redemptions.count() == 3


@pytest.mark.django_db
def test_max_uses_three_admits_three_and_tells_the_fourth_it_is_used_up(make_invite):
    make_invite(code="TRIO", max_uses=3)
    for i in range(3):
        data = {"username": f"trio{i}", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "trio"}
        assert Client().post(SIGNUP, data).status_code == HTTPStatus.FOUND
    data = {"username": "trio3", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "trio"}
    assert error_on_invite_field(Client(), data).code == "used_up"


def _race(n_threads, make_data):
    """Start n_threads sign-ups at the same instant; return their status codes."""
    barrier = threading.Barrier(n_threads)
    statuses = []
    lock = threading.Lock()

    def worker(i):
        try:
            client = Client()
            barrier.wait(timeout=30)
            status = client.post(SIGNUP, make_data(i)).status_code
            with lock:
                statuses.append(status)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == n_threads, "a sign-up thread crashed or hung"
    return statuses


@pytest.mark.django_db(transaction=True)
def test_thirty_concurrent_signups_on_a_ten_use_code_create_exactly_ten_accounts():
    invite = InviteCode.objects.create(code="RACE", max_uses=10)
    statuses = _race(
        30, lambda i: {"username": f"racer{i}", "password1": PASSWORD, "password2": PASSWORD, "invite_code": "race"}
    )
    assert statuses.count(HTTPStatus.FOUND) == 10
    assert statuses.count(HTTPStatus.OK) == 20  # the rest see the form again, with "used up"
    invite.refresh_from_db()
    assert invite.use_count == 10
    assert User.objects.count() == 10
    assert InviteRedemption.objects.filter(invite=invite).count() == 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_signups_for_one_username_create_one_account_and_use_one_invite():
    invite = InviteCode.objects.create(code="SAME", max_uses=10)
    statuses = _race(
        8,
        lambda i: {
            "username": "Twin" if i % 2 else "twin",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "invite_code": "same",
        },
    )
    assert statuses.count(HTTPStatus.FOUND) == 1
    invite.refresh_from_db()
    assert invite.use_count == 1
    assert User.objects.count() == 1
