"""Staff run everything from the Django admin; students never get in."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from accounts.models import InviteCode, InviteRedemption

User = get_user_model()

ADMIN_PAGES = [
    ("admin:index", []),
    ("admin:accounts_user_changelist", []),
    ("admin:accounts_user_add", []),
    ("admin:accounts_invitecode_changelist", []),
    ("admin:accounts_invitecode_add", []),
    ("admin:accounts_invitecode_generate", []),
    ("admin:accounts_inviteredemption_changelist", []),
    ("admin:auth_group_changelist", []),
    ("admin:auth_group_add", []),
]


@pytest.fixture
def populated(db, staff):
    team = Group.objects.create(name="team-a")
    invite = InviteCode.objects.create(code="USED", max_uses=1, group=team, created_by=staff)
    student = User.objects.create_user(username="redeemer", password="x")
    student.groups.add(team)
    InviteRedemption.objects.create(invite=invite, user=student)
    InviteCode.objects.filter(pk=invite.pk).update(use_count=1)
    InviteCode.objects.create(code="OLD", expires_at=timezone.now() - timedelta(days=1))
    InviteCode.objects.create(code="OFF", is_active=False)
    InviteCode.objects.create(code="FRESH", max_uses=30)
    return student


@pytest.mark.parametrize(("name", "args"), ADMIN_PAGES)
def test_admin_pages_load_for_staff(client, staff, populated, name, args):
    client.force_login(staff)
    assert client.get(reverse(name, args=args)).status_code == HTTPStatus.OK


@pytest.mark.parametrize(("name", "args"), ADMIN_PAGES)
def test_admin_pages_are_refused_to_students(client, student, name, args):
    client.force_login(student)
    response = client.get(reverse(name, args=args))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("admin:login"))


def test_user_change_page_shows_the_invite_used(client, staff, populated):
    client.force_login(staff)
    page = client.get(reverse("admin:accounts_user_change", args=[populated.pk]))
    assert page.status_code == HTTPStatus.OK
    assert "USED" in page.text
    listing = client.get(reverse("admin:accounts_user_changelist"))
    assert "USED" in listing.text and "team-a" in listing.text


@pytest.mark.parametrize(
    ("status", "expected"),
    [("usable", {"FRESH"}), ("expired", {"OLD"}), ("used_up", {"USED"}), ("inactive", {"OFF"})],
)
def test_invite_list_filters_by_status(client, staff, populated, status, expected):
    client.force_login(staff)
    response = client.get(reverse("admin:accounts_invitecode_changelist"), {"status": status})
    shown = {obj.code for obj in response.context["cl"].result_list}
    assert shown == expected


def test_invite_list_shows_uses_over_max(client, staff, populated):
    client.force_login(staff)
    response = client.get(reverse("admin:accounts_invitecode_changelist"))
    assert "1 / 1" in response.text and "0 / ∞" in response.text


def test_staff_generates_a_batch_of_codes(client, staff):
    team = Group.objects.create(name="class-b")
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_invitecode_generate"),
        {"count": 25, "max_uses": 1, "group": team.pk, "note": "week 1", "expires_at": ""},
    )
    assert response.status_code == HTTPStatus.FOUND
    codes = InviteCode.objects.filter(note="week 1")
    assert codes.count() == 25
    assert {(c.max_uses, c.group_id, c.created_by_id) for c in codes} == {(1, team.pk, staff.pk)}
    listing = client.get(response["Location"])
    assert len(listing.context["cl"].result_list) == 25


@pytest.mark.parametrize("count", ["0", "-3", "501", "many", ""])
def test_generating_a_silly_number_of_codes_is_a_form_error(client, staff, count):
    client.force_login(staff)
    response = client.post(reverse("admin:accounts_invitecode_generate"), {"count": count})
    assert response.status_code == HTTPStatus.OK
    assert "count" in response.context["form"].errors
    assert not InviteCode.objects.exists()


def test_staff_deactivates_codes_with_the_action(client, staff, populated):
    client.force_login(staff)
    fresh = InviteCode.objects.get(code="FRESH")
    response = client.post(
        reverse("admin:accounts_invitecode_changelist"),
        {"action": "deactivate", "_selected_action": [fresh.pk]},
    )
    assert response.status_code == HTTPStatus.FOUND
    fresh.refresh_from_db()
    assert fresh.is_active is False


def test_staff_deactivates_users_but_not_themselves(client, staff, populated):
    client.force_login(staff)
    client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [populated.pk, staff.pk], "apply": "1"},
    )
    populated.refresh_from_db()
    staff.refresh_from_db()
    assert (populated.is_active, staff.is_active) == (False, True)


def test_admin_add_user_enforces_the_username_rule(client, staff):
    client.force_login(staff)
    data = {"username": "Root", "password1": "pw-Analysis-42", "password2": "pw-Analysis-42", "usable_password": "true"}
    response = client.post(reverse("admin:accounts_user_add"), data)
    assert response.status_code == HTTPStatus.OK
    assert "username" in response.context["adminform"].form.errors
    assert not User.objects.filter(username="root").exists()


def test_admin_add_invite_normalises_the_code_and_records_the_creator(client, staff):
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_invitecode_add"),
        {"code": " week one ", "max_uses": "", "expires_at_0": "", "expires_at_1": "", "is_active": "on", "note": ""},
    )
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    invite = InviteCode.objects.get()
    assert (invite.code, invite.created_by, invite.max_uses) == ("WEEKONE", staff, None)


def test_admin_refuses_a_case_variant_of_an_existing_code(client, staff):
    InviteCode.objects.create(code="DUP")
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_invitecode_add"),
        {"code": "dup", "expires_at_0": "", "expires_at_1": "", "is_active": "on"},
    )
    assert response.status_code == HTTPStatus.OK
    assert "code" in response.context["adminform"].form.errors


def test_admin_refuses_max_uses_below_uses_so_far(client, staff, populated):
    client.force_login(staff)
    invite = InviteCode.objects.create(code="BUSY", max_uses=5)
    InviteCode.objects.filter(pk=invite.pk).update(use_count=3)
    response = client.post(
        reverse("admin:accounts_invitecode_change", args=[invite.pk]),
        {"code": "BUSY", "max_uses": "2", "expires_at_0": "", "expires_at_1": "", "is_active": "on"},
    )
    assert response.status_code == HTTPStatus.OK
    assert response.context["adminform"].form.errors
    invite.refresh_from_db()
    assert invite.max_uses == 5
