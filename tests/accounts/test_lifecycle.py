"""Account lifecycle in-process: what deactivation, deletion, renaming and password changes revoke, retired
names, the queue of hub-user removals while the hub is unreachable, and credentials in /o/ URLs.
tests/e2e/test_lifecycle.py replays the attacks against the real hub."""

from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from accounts import hub
from accounts.forms import SignupForm
from accounts.models import PendingHubCall, RetiredUsername
from tests.accounts import test_oauth
from tests.accounts.test_oauth import TOKEN, USERINFO, full_login
from tests.conftest import PASSWORD
from tests.live import free_port

User = get_user_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
NEW_PASSWORD = "Another-cfps-pass-2026"
hub_app = test_oauth.hub_app  # the hub's OAuth client, as bootstrap registers it (a fixture)


@pytest.fixture
def hub_down(settings):
    """The hub's API on a port where nothing listens: every removal fails and must be kept."""
    settings.HUB_API_URL = f"http://127.0.0.1:{free_port()}/jupyter/hub/api"
    hub._last_check = 0.0
    return settings.HUB_API_URL


def live_tokens(user):
    return {
        "access": AccessToken.objects.filter(user=user).count(),
        "refresh": RefreshToken.objects.filter(user=user, revoked__isnull=True).count(),
    }


def sessions_of(user):
    return [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)]


def pending(username):
    return PendingHubCall.objects.filter(username=username, kind=PendingHubCall.Kind.REMOVE).first()


# --- deactivation ----------------------------------------------------------------------------------------
def test_deactivating_in_the_shell_revokes_tokens_deletes_sessions_and_queues_the_hub_removal(client, student, hub_app):
    full_login(client)
    assert live_tokens(student)["refresh"] == 1 and len(sessions_of(student)) == 1

    student.is_active = False
    student.save()

    assert live_tokens(student) == {"access": 0, "refresh": 0}
    assert sessions_of(student) == [], "a re-activation would bring the old session back"
    assert pending(student.username).reason == "deactivated"


def test_reactivating_does_not_bring_back_the_old_session(client, student):
    client.force_login(student)
    student.is_active = False
    student.save()
    student.is_active = True
    student.save()
    home = client.get(reverse("home"))
    assert not home.wsgi_request.user.is_authenticated


def test_the_admin_action_deactivates_each_user_through_save(client, staff, student):
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [student.pk], "apply": "1"},
        follow=True,
    )
    assert response.status_code == HTTPStatus.OK
    assert pending(student.username).reason == "deactivated"


def test_a_login_does_not_queue_anything(client, student):
    assert client.post(reverse("login"), {"username": student.username, "password": PASSWORD}).status_code == 302
    assert not PendingHubCall.objects.filter(kind=PendingHubCall.Kind.REMOVE).exists()


# --- deletion and renaming: retired names --------------------------------------------------------------
def test_deleting_a_user_retires_the_name_and_queues_the_hub_removal(student):
    student.delete()
    assert RetiredUsername.objects.get(username="student9").reason == "deleted"
    assert pending("student9").reason == "deleted"


@pytest.mark.parametrize("typed", ["student9", "Student9", " STUDENT9 "])
def test_sign_up_refuses_a_retired_name_beside_the_field(student, signup_data, typed):
    student.delete()
    form = SignupForm(data=signup_data(username=typed))
    assert not form.is_valid()
    assert [e.code for e in form.errors.as_data()["username"]] == ["retired"]


def test_the_admin_add_form_refuses_a_retired_name(client, staff, student):
    student.delete()
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {"username": "student9", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == HTTPStatus.OK
    assert "cannot be used again" in response.content.decode()
    assert not User.objects.filter(username="student9").exists()


def test_no_code_path_can_create_an_account_with_a_retired_name(student):
    student.delete()
    with pytest.raises(ValidationError) as caught:
        User.objects.create_user(username="student9", password=PASSWORD)
    assert caught.value.code == "retired"


def test_renaming_retires_the_old_name_and_queues_its_hub_removal(student):
    student.username = "student10"
    student.save()
    assert RetiredUsername.objects.get(username="student9").reason == "renamed"
    assert pending("student9").reason == "renamed"
    with pytest.raises(ValidationError):
        User.objects.create_user(username="student9", password=PASSWORD)


def test_a_user_cannot_be_renamed_to_a_retired_name(student):
    other = User.objects.create_user(username="leaver1", password=PASSWORD)
    other.delete()
    student.username = "leaver1"
    with pytest.raises(ValidationError):
        student.save()


def test_the_delete_confirmation_says_what_happens_to_the_hub_account_and_the_files(client, staff, student, hub_app):
    full_login(Client())  # tokens, which the OAuth admin alone would not let staff delete
    client.force_login(staff)
    single = client.get(reverse("admin:accounts_user_delete", args=[student.pk]), HTTP_ACCEPT_LANGUAGE="en")
    bulk = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [student.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    single, bulk = single.content.decode(), bulk.content.decode()
    for page in (single, bulk):
        assert "jupyterhub-user-student9" in page, page[-3000:]
        assert "can never be used again" in page

    done = client.post(reverse("admin:accounts_user_delete", args=[student.pk]), {"post": "yes"})
    assert done.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(pk=student.pk).exists()
    assert live_tokens(student) == {"access": 0, "refresh": 0}
    assert RetiredUsername.objects.filter(username="student9").exists()


# --- password changes --------------------------------------------------------------------------------
def test_password_change_form_keeps_this_session_ends_the_others_and_revokes_refresh_tokens(client, student, hub_app):
    full_login(client)
    other = Client()
    other.force_login(student)
    assert other.get(reverse("home")).wsgi_request.user.is_authenticated

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]

    assert client.get(reverse("home")).wsgi_request.user.is_authenticated, "the current session must stay"
    assert not other.get(reverse("home")).wsgi_request.user.is_authenticated, "the other session must end"
    assert live_tokens(student) == {"access": 0, "refresh": 0}
    assert pending(student.username).reason == "password changed"


def test_set_password_and_save_in_the_shell_revokes_tokens(client, student, hub_app, settings):
    tokens = full_login(client)
    student.set_password(NEW_PASSWORD)
    student.save()
    assert live_tokens(student) == {"access": 0, "refresh": 0}
    refreshed = Client().post(
        TOKEN,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": hub_app.client_id,
            "client_secret": settings.HUB_CLIENT_SECRET,
        },
    )
    assert refreshed.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED), refreshed.content


def test_admin_password_change_revokes_tokens(client, staff, student, hub_app):
    full_login(Client())
    client.force_login(staff)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[student.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == HTTPStatus.FOUND, response.content[-2000:]
    assert live_tokens(student) == {"access": 0, "refresh": 0}
    assert pending(student.username).reason == "password changed"


@override_settings(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "accounts.hashers.ClientSecretHasher",
    ]
)
def test_a_password_hash_upgrade_at_login_is_not_a_password_change(client, student, hub_app):
    full_login(Client())
    old_hash = PBKDF2PasswordHasher().encode(PASSWORD, "somesalt", iterations=1000)  # an older hasher
    User.objects.filter(pk=student.pk).update(password=old_hash)
    assert client.post(reverse("login"), {"username": "student9", "password": PASSWORD}).status_code == 302
    student.refresh_from_db()
    assert student.password.startswith("md5$"), "the hash should have been upgraded"
    assert live_tokens(student)["refresh"] == 1
    assert pending("student9") is None


# --- the hub is unreachable: the removal is kept and retried ---------------------------------------------
def test_an_unreachable_hub_leaves_the_removal_pending_with_its_error(student, hub_down):
    student.is_active = False
    student.save()
    hub.process_pending()
    row = pending("student9")
    assert row.attempts == 1 and "unreachable" in row.last_error


def test_the_next_portal_request_retries_a_due_removal(client, student, hub_down):
    hub.queue_removal("student9", reason="deactivated")
    assert pending("student9").attempts == 0
    client.get(reverse("home"))
    assert pending("student9").attempts == 1
    client.get(reverse("home"))  # retried again only after RETRY_SECONDS, not on every request
    assert pending("student9").attempts == 1


def test_retry_command_lists_with_dry_run_and_fails_while_the_hub_is_down(student, hub_down, capsys):
    hub.queue_removal("student9", reason="deleted")
    call_command("retry_hub_removals", "--dry-run")
    assert "would remove hub user student9 (deleted" in capsys.readouterr().out
    with pytest.raises(CommandError, match="still pending"):
        call_command("retry_hub_removals")
    assert pending("student9").attempts == 1


def test_retry_command_with_nothing_pending_says_so(db, capsys):
    call_command("retry_hub_removals")
    assert "No pending hub calls" in capsys.readouterr().out


# --- credentials in /o/ URLs -------------------------------------------------------------------------
def test_userinfo_refuses_an_access_token_in_the_query_string(client, student, hub_app):
    tokens = full_login(client)
    attack = Client().get(USERINFO, {"access_token": tokens["access_token"]})
    assert attack.status_code == HTTPStatus.BAD_REQUEST
    assert attack.json()["error"] == "invalid_request"
    header = Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert header.status_code == HTTPStatus.OK


@pytest.mark.parametrize("param", ["client_secret", "code", "code_verifier", "refresh_token"])
def test_the_token_endpoint_refuses_credentials_in_the_query_string(client, hub_app, param):
    response = client.post(f"{TOKEN}?{param}=x", {"grant_type": "authorization_code"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert param in response.json()["error_description"]


def test_bootstrap_says_in_one_line_when_the_admin_name_was_retired(db, settings):
    User.objects.create_user(username=settings.ADMIN_USERNAME, password=PASSWORD).delete()
    with pytest.raises(CommandError, match="ADMIN_USERNAME=.*Set another one in .env"):
        call_command("bootstrap", verbosity=0)


def test_retry_command_with_inactive_catches_deactivations_that_bypassed_save(student, hub_down, capsys):
    User.objects.filter(pk=student.pk).update(is_active=False)  # no signal: nothing queued
    assert pending("student9") is None
    call_command("retry_hub_removals", "--inactive", "--dry-run")
    assert "would remove hub user student9 (inactive account)" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("retry_hub_removals", "--inactive")
    assert pending("student9").reason == "inactive" and pending("student9").attempts == 1


def test_the_deactivate_command_ends_access_like_the_admin_and_reactivate_restores_login(client, student, hub_app):
    client.force_login(student)
    call_command("deactivate_users", student.username)
    student.refresh_from_db()
    assert not student.is_active
    assert pending(student.username) is not None
    assert not Session.objects.exists()  # the student's portal session is gone
    call_command("deactivate_users", student.username)  # idempotent
    call_command("deactivate_users", "--reactivate", student.username)
    student.refresh_from_db()
    assert student.is_active and Client().login(username=student.username, password=PASSWORD)


def test_the_deactivate_command_takes_a_group_and_dry_run_changes_nothing(student, capsys):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="class-a")
    student.groups.add(group)
    call_command("deactivate_users", "--group", "class-a", "--dry-run")
    student.refresh_from_db()
    assert student.is_active and f"would deactivate {student.username}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "named"), [((), "at least one"), (("nobody-here",), "nobody-here"), (("--group", "typo"), "typo")]
)
def test_the_deactivate_command_refuses_unknown_names_in_one_line(db, args, named):
    with pytest.raises(CommandError, match=named):
        call_command("deactivate_users", *args)


# --- hub users made before the first login, servers at login (issue 23) --------------------------------------
def calls(username):
    return sorted(PendingHubCall.objects.filter(username=username).values_list("kind", flat=True))


def test_a_new_account_queues_its_hub_user_and_a_students_login_its_server(client, student, hub_down, settings):
    assert calls("student9") == ["sync"]
    settings.START_SERVER_AT_LOGIN = True
    assert client.post(reverse("login"), {"username": "student9", "password": PASSWORD}).status_code == 302
    assert calls("student9") == ["start", "sync"]


def test_a_removal_wins_over_a_pending_start_and_an_inactive_account_is_never_made(student, hub_down):
    hub.queue_start("student9")
    student.is_active = False
    student.save()
    assert calls("student9") == ["remove", "sync"]  # the start is gone with the deactivation
    PendingHubCall.objects.filter(kind=PendingHubCall.Kind.REMOVE).delete()  # as if the hub had confirmed it
    hub.queue_start("student9")  # e.g. left over from a login
    done, failed = hub.process_pending()
    # Neither call reached the (unreachable) hub: the account is inactive, so both are simply dropped.
    assert failed == [] and sorted(done) == ["student9", "student9"] and calls("student9") == []


def test_staff_logins_start_no_server(client, db, hub_down, settings):
    settings.START_SERVER_AT_LOGIN = True
    User.objects.create_user(username="teacher1", password=PASSWORD, is_staff=True)
    client.post(reverse("login"), {"username": "teacher1", "password": PASSWORD})
    assert "start" not in calls("teacher1")


def test_a_users_start_waits_while_the_hub_user_is_not_made(student, hub_down):
    hub.queue_start("student9")
    done, failed = hub.process_pending()
    assert done == [] and [name for name, _ in failed] == ["student9"]  # the sync failed, the start was not tried
    start = PendingHubCall.objects.get(username="student9", kind=PendingHubCall.Kind.START)
    assert start.attempts == 0 and start.last_attempt_at is None


def test_two_processes_that_read_the_same_due_call_carry_it_out_once(student, hub_down):
    """Two portal processes (gunicorn workers, or one and the retry command) find the same due rows: the
    conditional update lets one of them take each row, and the other leaves the whole user alone meanwhile."""
    mine, theirs = list(hub._due()), list(hub._due())
    assert [row.kind for row in mine] == [row.kind for row in theirs] == ["sync"]
    assert hub._claim(mine[0]) and not hub._claim(theirs[0])
    hub.queue_start("student9")
    assert not hub._due(force=True).filter(username="student9").exists()  # under way: not even the command's
    assert hub.process_pending(force=True) == ([], [])
    # The process that took it failed (the hub is down): the user's calls are due again, in their order.
    PendingHubCall.objects.filter(pk=mine[0].pk).update(last_error="hub unreachable")
    assert sorted(row.kind for row in hub._due(force=True)) == ["start", "sync"]
