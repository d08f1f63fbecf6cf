"""What the record hears by itself, whatever path made the change (a page, the admin, a command, the shell):

- Django's auth signals: a login (also the one after sign-up or a set-password link), a failed login, a logout.
  A failed login keeps the typed name only when an account has it: an unknown name may be a password typed
  into the wrong box.
- A saved account (accounts/signals.py remembers what it was): its password (which kind of change follows
  from the page that saved it: a set-password link, a reset mail, a temporary password, any other change),
  staff and superuser flags, (de)activation and approval, a new name; a deleted account.
- Memberships of a staff role (accounts/roles.py) and permissions given to an account or a group.
- Any other signal sent with the account as `user` (and the request, if there is one), by `record_on(signal,
  kind)`: a new kind of event is then one line in kinds.py and one here: the second factor's enrolment, codes
  given and wrong, device resets, and sessions that idled out (accounts/events.py), at the end of this module.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from accounts import events, usernames
from accounts.models import StaffRole
from audit.kinds import Kind
from audit.records import current_request, record, view_name

User = get_user_model()

# The page that saved a password says which kind of change it was (view names, never paths).
_PASSWORD_PAGES = {"set_password": Kind.SET_PASSWORD_LINK_USED, "password_reset_confirm": Kind.PASSWORD_RESET_DONE}


def record_on(signal, kind, account: str = "user") -> None:
    """Record `kind` whenever `signal` is sent: the account is its `account` argument, the actor the request's
    user (or nobody), any other argument that is a number, a string or a flag a detail (records.py leaves out
    what is named like a secret)."""

    def _receiver(sender, request=None, **kwargs):
        detail = {
            name: value
            for name, value in kwargs.items()
            if name not in (account, "signal") and isinstance(value, bool | int | str)
        }
        record(kind, subject=kwargs.get(account), request=request, **detail)

    signal.connect(_receiver, weak=False, dispatch_uid=f"audit:{kind}:{id(signal)}")


# --- logins ------------------------------------------------------------------------------------------------
@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    record(Kind.LOGIN, actor=user, subject=user, request=request)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    record_failed_login(request, credentials.get("username") or "")


def record_failed_login(request, typed: str, **detail) -> None:
    name = usernames.normalize(typed)[:150]
    account = User.objects.filter(username=name).first() if name else None
    if account is None:
        record(Kind.LOGIN_FAILED, request=request, unknown_name=True, **detail)
    else:
        record(Kind.LOGIN_FAILED, subject=account, request=request, active=account.is_active, **detail)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        record(Kind.LOGOUT, actor=user, subject=user, request=request)


# --- a saved or deleted account ----------------------------------------------------------------------------
@receiver(post_save, sender=User)
def _account_saved(sender, instance, created, **kwargs):
    if created:
        for flag, kind in (("is_staff", Kind.STAFF_CHANGED), ("is_superuser", Kind.SUPERUSER_CHANGED)):
            if getattr(instance, flag):
                record(kind, subject=instance, **{flag: True, "new_account": True})
        return
    if getattr(instance, "_password_changed", False):
        _password_changed(instance)
    previous = getattr(instance, "_previous", None)
    if not previous:
        return
    if previous["username"] != instance.username:
        record(Kind.RENAMED, subject=instance, old_name=previous["username"])
    for flag, kind in (("is_staff", Kind.STAFF_CHANGED), ("is_superuser", Kind.SUPERUSER_CHANGED)):
        if previous[flag] != getattr(instance, flag):
            record(kind, subject=instance, **{flag: getattr(instance, flag)})
    if previous["is_active"] and not instance.is_active:
        record(Kind.DEACTIVATED, subject=instance)
    elif not previous["is_active"] and instance.is_active:
        approved = previous["awaiting_approval"] and not instance.awaiting_approval
        record(Kind.APPROVED if approved else Kind.REACTIVATED, subject=instance)


def _password_changed(user) -> None:
    page = view_name(current_request())
    kind = _PASSWORD_PAGES.get(page)
    if kind is not None:  # the student, from a link: not logged in yet
        record(kind, actor=user, subject=user)
    elif user.must_change_password:
        record(Kind.TEMPORARY_PASSWORD_SET, subject=user)
    else:
        record(Kind.PASSWORD_CHANGED, subject=user)


@receiver(post_delete, sender=User)
def _account_deleted(sender, instance, **kwargs):
    # The row is gone: the entry keeps the name only.
    record(Kind.DELETED, subject=instance.username, name=instance.get_full_name())


# --- roles and permissions ---------------------------------------------------------------------------------
def _role_names(group_ids) -> list[str]:
    return sorted(StaffRole.objects.filter(group_id__in=group_ids).values_list("group__name", flat=True))


@receiver(m2m_changed, sender=User.groups.through)
def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if reverse:  # group.user_set.add(...): one entry per account, when the group is a role
        if action in ("post_add", "post_remove") and _role_names([instance.pk]):
            change = "added" if action == "post_add" else "removed"
            for user in User.objects.filter(pk__in=pk_set or ()):
                record(Kind.ROLE_CHANGED, subject=user, **{change: [instance.name]})
        elif action == "pre_clear" and _role_names([instance.pk]):
            for user in instance.user_set.all():
                record(Kind.ROLE_CHANGED, subject=user, removed=[instance.name])
        return
    if action == "pre_clear":
        instance._roles_cleared = _role_names(instance.groups.values_list("pk", flat=True))
    elif action == "post_clear" and getattr(instance, "_roles_cleared", None):
        record(Kind.ROLE_CHANGED, subject=instance, removed=instance._roles_cleared)
    elif action in ("post_add", "post_remove") and pk_set and (names := _role_names(pk_set)):
        record(Kind.ROLE_CHANGED, subject=instance, **{"added" if action == "post_add" else "removed": names})


def _permission_names(ids) -> list[str]:
    found = Permission.objects.filter(pk__in=ids).select_related("content_type")
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in found)


def _related_ids(instance, reverse, model) -> list[int]:
    if reverse:  # instance is a permission; model says whose
        manager = instance.user_set if model is User else instance.group_set
    else:
        manager = instance.user_permissions if isinstance(instance, User) else instance.permissions
    return list(manager.values_list("pk", flat=True))


def _permissions_changed(instance, action, reverse, pk_set, model):
    """For an account's or a group's permissions (`reverse`: changed from the permission's side)."""
    if action == "pre_clear":
        instance._permissions_cleared = _related_ids(instance, reverse, model)
        return
    if action == "post_clear":
        pk_set, change = getattr(instance, "_permissions_cleared", None), "removed"
    elif action in ("post_add", "post_remove"):
        change = "added" if action == "post_add" else "removed"
    else:
        return
    if not pk_set:
        return
    if reverse:
        name = f"{instance.content_type.app_label}.{instance.codename}"
        for target in model.objects.filter(pk__in=pk_set):
            _permission_entry(target, change, [name])
    else:
        _permission_entry(instance, change, _permission_names(pk_set))


def _permission_entry(target, change, names) -> None:
    if isinstance(target, Group):
        record(Kind.PERMISSIONS_CHANGED, group=target.name, **{change: names})
    else:
        record(Kind.PERMISSIONS_CHANGED, subject=target, **{change: names})


@receiver(m2m_changed, sender=User.user_permissions.through)
def _account_permissions_changed(sender, instance, action, reverse, pk_set, model, **kwargs):
    _permissions_changed(instance, action, reverse, pk_set, model)


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_permissions_changed(sender, instance, action, reverse, pk_set, model, **kwargs):
    _permissions_changed(instance, action, reverse, pk_set, model)


# --- staff's second factor and idle sessions (accounts/events.py) -------------------------------------------
record_on(events.second_factor_enrolled, Kind.OTP_ENROLLED)
record_on(events.second_factor_verified, Kind.OTP_VERIFIED)
record_on(events.second_factor_failed, Kind.OTP_FAILED)
record_on(events.second_factor_reset, Kind.OTP_RESET)
record_on(events.session_idled_out, Kind.SESSION_IDLED_OUT)
