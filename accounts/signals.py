"""Deactivating an account ends its access everywhere: OAuth tokens revoked, hub server stopped.

Runs on every save that turns `is_active` off, whether from the admin, a command or the shell.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts import hub
from accounts.oauth import revoke_all_tokens

User = get_user_model()


@receiver(pre_save, sender=User)
def _remember_previous_state(sender, instance, update_fields=None, **kwargs):
    if update_fields is not None and "is_active" not in update_fields:
        instance._was_active = None  # e.g. the last_login update on every login: nothing to look up
        return
    instance._was_active = (
        sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first() if instance.pk else None
    )


@receiver(post_save, sender=User)
def _revoke_access_of_deactivated_users(sender, instance, created, **kwargs):
    if created or instance.is_active or not getattr(instance, "_was_active", False):
        return
    revoke_all_tokens(instance)
    username = instance.username
    transaction.on_commit(lambda: hub.stop_server(username))
