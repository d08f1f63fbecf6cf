"""What changing an account does to its access, whichever path made the change (admin form or action, a
command, `user.save()` in the shell, a password form):

- Deactivated: its OAuth tokens are revoked, its portal sessions deleted (re-activating must not revive them)
  and its hub user removed (server stopped, every hub token deleted; accounts.hub).
- Deleted: its name is retired for good (RetiredUsername: a later sign-up must never get the old files or
  tokens) and its hub user removed. OAuth tokens go with the row (foreign keys cascade).
- Renamed: the old name is retired and its hub user removed, as for a deletion (the files stay under it).
- Password changed (`set_password` then `save`: password change and reset forms, the admin, the
  `changepassword` command, a set-password link): every OAuth token is revoked, so the hub's next auth
  refresh ends its other sessions, and the hub user is removed, so API tokens made with the old password
  die too. Django's session auth hash already ends the other portal sessions; the password forms keep the
  current one (`update_session_auth_hash`), which then logs in to the hub again without asking.
A password hash upgrade at login (same password, new hasher) is not a change: Django clears `_password`.

And what it does to the person's hub user beforehand (issue 23, accounts.hub): an active account has its hub user
with its classes and staff role before its first login, whatever made or changed it: created (sign-up, roster
import, the admin, a command), re-activated, its classes (either side: `user.groups`, `group.user_set`, a class
renamed or deleted), its staff flags or permissions changed, its password changed (the removal first, then a
fresh hub user), renamed (the new name). A student's portal login (not staff's: they log in to work in the
admin, and a server each would hold memory a class needs) asks for their server to start, when
START_SERVER_AT_LOGIN is on.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django.utils import timezone

from accounts import hub
from accounts.oauth import revoke_all_tokens

User = get_user_model()

_WATCHED = {"is_active", "username", "password", "is_staff", "is_superuser"}
# What the account was before a save that may change it: here for the rules below, and for the record of who did
# what (audit/receivers.py: staff and superuser flags, approval).
_PREVIOUS = ("is_active", "username", "is_staff", "is_superuser", "awaiting_approval")
_DB_SESSIONS = {"django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"}


@receiver(pre_save, sender=User)
def _remember_previous_state(sender, instance, update_fields=None, **kwargs):
    instance._previous = None
    # set_password() leaves the raw password here until save(); a hash upgrade at login clears it first.
    instance._password_changed = bool(instance.pk) and getattr(instance, "_password", None) is not None
    if not instance.pk or (update_fields is not None and not _WATCHED & set(update_fields)):
        return  # e.g. the last_login update on every login: nothing to look up
    instance._previous = sender.objects.filter(pk=instance.pk).values(*_PREVIOUS).first()


@receiver(post_save, sender=User)
def _end_access_after_changes(sender, instance, created, **kwargs):
    previous = getattr(instance, "_previous", None)
    if created:
        sync_hub_user(instance, reason="created")
        return
    if previous and previous["username"] != instance.username:
        retire_username(previous["username"], reason="renamed")
        hub.queue_removal(previous["username"], reason="renamed")
        sync_hub_user(instance, reason="renamed")
    if previous and previous["is_active"] and not instance.is_active:
        revoke_all_tokens(instance)
        end_sessions(instance)
        hub.queue_removal(instance.username, reason="deactivated")
    elif getattr(instance, "_password_changed", False):
        revoke_all_tokens(instance)
        hub.queue_removal(instance.username, reason="password changed")
        sync_hub_user(instance, reason="password changed")
    elif previous and any(
        previous[flag] != getattr(instance, flag) for flag in ("is_active", "is_staff", "is_superuser")
    ):
        sync_hub_user(instance, reason="changed")


def sync_hub_user(user, reason: str) -> None:
    """Queue making or updating an active account's hub user (accounts.hub; nothing for an inactive one)."""
    if user.is_active:
        hub.queue_sync(user.username, reason=reason)


def _sync_user_ids(pks, reason: str) -> None:
    for user in User.objects.filter(pk__in=list(pks or ()), is_active=True).only("username", "is_active"):
        sync_hub_user(user, reason=reason)


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
def _sync_after_group_or_permission_changes(sender, instance, action, reverse, pk_set, **kwargs):
    """Classes decide the hub groups, roles and permissions the staff mark: from the user's side (`instance` is
    the user) or the group's (`group.user_set.add(...)`: `pk_set` holds the users)."""
    reason = "groups changed" if sender is User.groups.through else "permissions changed"
    if action == "pre_clear" and reverse:
        instance._cleared_users = list(instance.user_set.values_list("pk", flat=True))
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if not reverse:
        sync_hub_user(instance, reason=reason)
    elif action == "post_clear":
        _sync_user_ids(getattr(instance, "_cleared_users", ()), reason)
    elif sender is User.groups.through:
        _sync_user_ids(pk_set, reason)


@receiver(pre_save, sender=Group)
def _remember_group_name(sender, instance, **kwargs):
    instance._previous_name = sender.objects.filter(pk=instance.pk).values_list("name", flat=True).first()


@receiver(post_save, sender=Group)
def _sync_members_of_a_renamed_group(sender, instance, created, **kwargs):
    if not created and getattr(instance, "_previous_name", None) not in (None, instance.name):
        _sync_user_ids(instance.user_set.values_list("pk", flat=True), "class renamed")


@receiver(pre_delete, sender=Group)
def _remember_members_of_a_deleted_group(sender, instance, **kwargs):
    instance._members = list(instance.user_set.values_list("pk", flat=True))


@receiver(post_delete, sender=Group)
def _sync_members_of_a_deleted_group(sender, instance, **kwargs):
    _sync_user_ids(getattr(instance, "_members", ()), "class deleted")


@receiver(user_logged_in)
def _start_server_at_login(sender, request, user, **kwargs):
    """A student's portal login starts their server in the background (accounts.hub `queue_start`). Not for
    staff (module docstring), nor for an account that must first replace a temporary password (the change
    removes the hub user and its server: accounts/signals.py above)."""
    if not getattr(settings, "START_SERVER_AT_LOGIN", False):
        return
    if not user.is_active or user.is_staff or user.is_superuser or getattr(user, "must_change_password", False):
        return
    hub.queue_start(user.username)


@receiver(post_delete, sender=User)
def _retire_deleted_users(sender, instance, **kwargs):
    retire_username(instance.username, reason="deleted")
    hub.queue_removal(instance.username, reason="deleted")


def retire_username(username: str, reason: str) -> None:
    from accounts.models import RetiredUsername

    RetiredUsername.objects.get_or_create(username=username, defaults={"reason": reason})


def end_sessions(user) -> int:
    """Delete the user's portal sessions (database-backed engines; others rely on the is_active check)."""
    if settings.SESSION_ENGINE not in _DB_SESSIONS:
        return 0
    from importlib import import_module

    from django.contrib.sessions.models import Session

    store = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            store(session_key=session.session_key).delete()
            ended += 1
    return ended
