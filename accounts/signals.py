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
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save
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
        return
    if previous and previous["username"] != instance.username:
        retire_username(previous["username"], reason="renamed")
        hub.queue_removal(previous["username"], reason="renamed")
    if previous and previous["is_active"] and not instance.is_active:
        revoke_all_tokens(instance)
        end_sessions(instance)
        hub.queue_removal(instance.username, reason="deactivated")
    elif getattr(instance, "_password_changed", False):
        revoke_all_tokens(instance)
        hub.queue_removal(instance.username, reason="password changed")


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
