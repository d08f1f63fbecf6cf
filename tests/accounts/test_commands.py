"""Operator commands: create_invite prints the code alone on its last line; bootstrap is idempotent."""

from datetime import date, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import InviteCode

User = get_user_model()


def run(*args, **options):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


@pytest.mark.django_db
def test_create_invite_prints_the_code_alone_on_the_last_line():
    output = run("create_invite", "--max-uses", "3")
    code = output.strip().splitlines()[-1]
    invite = InviteCode.objects.get()
    assert code == invite.code
    assert (invite.max_uses, invite.expires_at, invite.group) == (3, None, None)


@pytest.mark.django_db
def test_create_invite_with_every_option():
    day = (date.today() + timedelta(days=30)).isoformat()
    output = run(
        "create_invite",
        "--code",
        " my code ",
        "--expires",
        day,
        "--group",
        "class-a",
        "--create-group",
        "--note",
        "spring",
    )
    invite = InviteCode.objects.get()
    assert output.strip().splitlines()[-1] == "MYCODE" == invite.code
    assert invite.group.name == "class-a" and invite.note == "spring" and invite.max_uses is None
    assert invite.expires_at.date() >= date.fromisoformat(day)


@pytest.mark.django_db
def test_create_invite_with_quiet_verbosity_prints_only_the_code():
    assert len(run("create_invite", verbosity=0).strip().splitlines()) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-uses", "0"], "--max-uses"),
        (["--expires", "31/12/2026"], "--expires"),
        (["--expires", "2001-01-01"], "in the past"),
        (["--code", "DUPE"], "already exists"),
        (["--code", "x" * 65], "code"),
    ],
)
def test_create_invite_bad_arguments_fail_with_one_line(args, message):
    InviteCode.objects.create(code="DUPE")
    with pytest.raises(CommandError) as exc:
        run("create_invite", *args)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert InviteCode.objects.count() == 1


@pytest.mark.django_db
def test_bootstrap_creates_admin_and_env_codes_once(settings):
    settings.ADMIN_USERNAME = "Teacher-Wang"
    settings.ADMIN_PASSWORD = ""
    settings.INVITE_CODES = ["alpha", " Beta-2 "]
    first = run("bootstrap")
    assert "Generated password" in first
    admin = User.objects.get()
    assert (admin.username, admin.is_staff, admin.is_superuser) == ("teacher-wang", True, True)
    password_hash = admin.password
    assert sorted(InviteCode.objects.values_list("code", flat=True)) == ["ALPHA", "BETA-2"]

    second = run("bootstrap")
    assert "Generated password" not in second
    admin.refresh_from_db()
    assert admin.password == password_hash
    assert User.objects.count() == 1 and InviteCode.objects.count() == 2


@pytest.mark.django_db
def test_bootstrap_uses_admin_password_from_env(settings):
    settings.ADMIN_USERNAME = "cfps-admin"
    settings.ADMIN_PASSWORD = "From-dotenv-2026"
    settings.INVITE_CODES = []
    output = run("bootstrap")
    assert "From-dotenv-2026" not in output
    assert User.objects.get().check_password("From-dotenv-2026")


@pytest.mark.django_db
def test_bootstrap_restores_staff_rights_of_an_existing_admin(settings):
    settings.ADMIN_USERNAME = "cfps-admin"
    settings.INVITE_CODES = []
    User.objects.create_user(username="cfps-admin", password="x", is_active=False, is_superuser=True)
    run("bootstrap")
    admin = User.objects.get()
    assert admin.is_staff and admin.is_superuser and admin.is_active


@pytest.mark.django_db
def test_bootstrap_never_makes_a_students_account_with_the_admin_name_a_superuser(settings):
    """A student who signed up as the (new) ADMIN_USERNAME first must not be promoted at the next start."""
    settings.ADMIN_USERNAME = "teacher-li"
    settings.INVITE_CODES = []
    User.objects.create_user(username="teacher-li", password="x")
    with pytest.raises(CommandError, match="not staff; bootstrap will not make it a superuser"):
        run("bootstrap")
    student = User.objects.get()
    assert not (student.is_staff or student.is_superuser)


@pytest.mark.django_db
def test_bootstrap_refuses_a_reserved_admin_username(settings):
    settings.ADMIN_USERNAME = "admin"
    with pytest.raises(CommandError, match="ADMIN_USERNAME"):
        run("bootstrap")
    assert not User.objects.exists()


@pytest.mark.django_db
def test_bootstrap_dry_run_changes_nothing(settings):
    settings.ADMIN_USERNAME = "cfps-admin"
    settings.INVITE_CODES = ["gamma"]
    run("bootstrap", dry_run=True)
    assert not User.objects.exists() and not InviteCode.objects.exists()
