"""Invite codes that need approval: such accounts wait (and get no portal session and no hub code) until
staff approve them in the admin."""

from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from oauth2_provider.models import get_application_model

from tests.accounts.test_oauth import authorize_params, pkce_pair
from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db


@pytest.fixture
def approval_invite(make_invite):
    return make_invite(code="NEEDS-OK", max_uses=10, needs_approval=True)


def sign_up(client, code, username="waiter"):
    return client.post(
        reverse("signup"), {"username": username, "password1": PASSWORD, "password2": PASSWORD, "invite_code": code}
    )


def test_signup_with_an_approval_code_shows_the_waiting_page_and_logs_nobody_in(client, approval_invite):
    response = sign_up(client, approval_invite.code)
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == reverse("awaiting_approval")
    user = User.objects.get(username="waiter")
    assert (user.is_active, user.awaiting_approval) == (False, True)
    approval_invite.refresh_from_db()
    assert approval_invite.use_count == 1
    page = client.get(response["Location"])
    assert "等待审核" in page.content.decode()
    assert not page.context["user"].is_authenticated


def test_signup_with_an_ordinary_code_is_not_held(client, invite):
    assert sign_up(client, invite.code)["Location"] == reverse("home")
    assert User.objects.get(username="waiter").is_active


def test_waiting_account_with_the_right_password_gets_the_waiting_page_at_login(client, approval_invite):
    sign_up(client, approval_invite.code)
    response = client.post(reverse("login"), {"username": "waiter", "password": PASSWORD})
    assert response.status_code == HTTPStatus.OK
    assert "等待审核" in response.content.decode()
    assert not client.get(reverse("home")).context["user"].is_authenticated


def test_waiting_account_with_a_wrong_password_learns_nothing(client, approval_invite):
    sign_up(client, approval_invite.code)
    response = client.post(reverse("login"), {"username": "waiter", "password": "not-the-password-1"})
    assert response.context["form"].has_error("__all__", "invalid_login")
    assert "等待审核" not in response.content.decode()


def test_waiting_account_gets_no_hub_authorization_code_even_with_a_session(client, approval_invite):
    call_command("ensure_hub_client", verbosity=0)
    assert get_application_model().objects.filter(client_id=settings.HUB_CLIENT_ID).exists()
    sign_up(client, approval_invite.code)
    # The strongest case: a session for the account exists (as if made before it was put on hold).
    client.force_login(User.objects.get(username="waiter"))
    _, challenge = pkce_pair()
    response = client.get(reverse("oauth2_provider:authorize"), authorize_params(challenge))
    assert response.status_code == HTTPStatus.FOUND
    assert urlsplit(response["Location"]).path == reverse("login")
    assert "code=" not in response["Location"]


def test_admin_lists_waiting_accounts_and_approves_them_in_bulk(client, staff, approval_invite):
    for name in ("waiter1", "waiter2"):
        sign_up(client, approval_invite.code, name)
    User.objects.create_user(username="deactivated", password=PASSWORD, is_active=False)
    client.force_login(staff)
    changelist = reverse("admin:accounts_user_changelist")
    listed = client.get(changelist, {"approval": "waiting"}).context["cl"].queryset
    assert sorted(listed.values_list("username", flat=True)) == ["waiter1", "waiter2"]
    ids = list(User.objects.exclude(username=staff.username).values_list("pk", flat=True))
    response = client.post(changelist, {"action": "approve_users", "_selected_action": ids}, follow=True)
    assert "2" in " ".join(str(m) for m in response.context["messages"])
    assert set(User.objects.filter(is_active=True).values_list("username", flat=True)) == {
        "teacher",
        "waiter1",
        "waiter2",
    }
    assert not User.objects.filter(awaiting_approval=True).exists()
    client.logout()
    assert client.post(reverse("login"), {"username": "waiter1", "password": PASSWORD}).status_code == 302
