"""Staff roles, 教师 (teacher) and 助教 (teaching assistant), and the rule that only a superuser makes anyone
more powerful.

A role is a Django group holding a set of permissions, marked as a role by a `StaffRole` row. Groups are also
the classes and teams (each becomes a team volume, a hub group and an entry of the `groups` claim); a group
with that mark is never one of those, and no class may take a role's name (see "Classes are not roles"
below). `ensure_roles()`, which `manage.py bootstrap` runs, creates both groups and sets their permissions to
exactly what `ROLES` lists, on every run: change the lists here, not the groups in the admin (where a role's
permissions are read-only). A staff member needs `is_staff` (to enter the admin) and one role.

What each may do (superusers may do everything):

| may ...                                                                        | 教师 teacher | 助教 TA |
|--------------------------------------------------------------------------------|--------------|---------|
| students: see, add (also by roster import), edit name, e-mail, active, classes | yes          | yes     |
| students: approve, reset passwords (page, links, slips, temporary passwords)   | yes          | yes     |
| students: delete                                                               | yes          | no      |
| classes (groups): see, create (also from a roster or "add to a group")         | yes          | yes     |
| classes (groups): rename, delete                                               | yes          | no      |
| invite codes: see, print                                                       | yes          | yes     |
| students, invite codes: export as CSV (whoever may see them: accounts.exports) | yes          | yes     |
| invite codes: create, change, deactivate, delete                               | yes          | no      |
| announcements: see / write, change, delete                                     | yes / yes    | yes / no|
| usage page; stop a student's server                                            | yes          | yes     |
| failed e-mails, retired usernames (read-only pages)                            | yes          | no      |
| course work (the `course` app)                                                 | everything   | see     |
| hub admin (JupyterHub's admin page and API: every hub user, tokens, servers)   | yes          | no      |
| staff accounts, roles, permissions                                             | no           | no      |
| OAuth applications and tokens, pending hub removals (superuser-only pages)     | no           | no      |

Superuser only, enforced on the server, not just hidden (accounts/admin.py, accounts/admin_tools.py,
accounts/setpassword.py, staff/views.py):
- Protected accounts: staff, superusers and members of a role. A non-superuser sees them read-only and cannot
  edit any field, (de)activate, approve, delete, regroup them, set or reset their password or e-mail (the
  stock password page, temporary passwords, set-password links and slips), nor stop their server. Bulk
  actions leave them out of the selection and say how many. A non-superuser's own account is protected too:
  they change their own password on the portal's password page.
- The fields `is_staff`, `is_superuser` and `user_permissions` are not in a non-superuser's forms, so a forged
  POST naming them changes nothing; the add form has none of them either.
- Roles: a non-superuser's group choices are classes only (the user form, "add to a group"), and a role's
  name is refused as a new class, a roster's group or an invite code's group; so only a superuser puts
  anyone into a role or takes them out.
- Groups: only superusers see or change a class's permissions, and only they rename or delete a role (whose
  permissions everyone sees, read-only).

Classes are not roles: the hub never hears of a role (the `groups` claim lists classes only, so there is no
team volume `cfps-team-教师` and no hub group), invite codes cannot name one, and a roster or "add to a group"
that names one is refused. The hub admin flag (the `is_staff` claim) follows the `accounts.hub_admin`
permission: on the hub, admin is one level (it can act as any hub user, a superuser's included, though that
gives nothing in the portal), so TAs do not get it.

Upgrading: staff accounts made before roles existed keep everything they had (accounts/migrations/0005 gives
them the usage page, stop button and hub admin permissions that every staff account used to hold implicitly),
and `bootstrap` never takes a permission from a person; they only lose the power to change other staff
accounts. A superuser then puts each into a role and removes their individual permissions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import StaffRole

# The fields of the user form that only a superuser gets.
SUPERUSER_ONLY_FIELDS = ("is_staff", "is_superuser", "user_permissions")
HUB_ADMIN_PERMISSION = "accounts.hub_admin"


@dataclass(frozen=True)
class Role:
    key: str  # StaffRole.key
    name: str  # the group's name when bootstrap creates it (staff work in Chinese; a superuser may rename it)
    # Shell-style patterns over "app_label.codename": "staff.*" is every permission of the app, so permissions
    # of models added later (the course app) join the role at the next bootstrap.
    patterns: tuple[str, ...]


TEACHER = Role(
    StaffRole.Key.TEACHER,
    "教师",
    ("accounts.*", "auth.*_group", "staff.*", "course.*"),
)
TA = Role(
    StaffRole.Key.TA,
    "助教",
    (
        "accounts.view_user",
        "accounts.add_user",
        "accounts.change_user",
        "accounts.view_usage",
        "accounts.stop_server",
        "accounts.view_invitecode",
        "accounts.view_inviteredemption",
        "auth.view_group",
        "auth.add_group",
        "staff.view_announcement",
        "course.view_*",
    ),
)
ROLES = (TEACHER, TA)


class RoleError(Exception):
    """A role cannot be set up; the message is one line for the operator."""


def permissions_for(role: Role) -> list[Permission]:
    return [
        permission
        for permission in Permission.objects.select_related("content_type").order_by("pk")
        if any(fnmatchcase(f"{permission.content_type.app_label}.{permission.codename}", p) for p in role.patterns)
    ]


@transaction.atomic
def ensure_roles() -> list[str]:
    """Create the role groups, or find them, and set each one's permissions to its patterns; idempotent.

    A group that already has a role's name becomes that role only when every member is staff (an operator's
    own 教师 group, say); one with students in it is a class, and this stops with a RoleError instead.
    Returns one line per role saying what happened.
    """
    report = []
    for role in ROLES:
        marker = StaffRole.objects.select_related("group").filter(key=role.key).first()
        if marker is not None:
            group, how = marker.group, "exists"
        else:
            group = Group.objects.filter(name=role.name).first()
            if group is None:
                group, how = Group.objects.create(name=role.name), "created"
            else:
                students = list(group.user_set.filter(is_staff=False).values_list("username", flat=True)[:3])
                if students:
                    raise RoleError(
                        f"the group {role.name!r} has members who are not staff ({', '.join(students)}), so it is "
                        f"a class, not the {role.key} role: rename it in the admin, then run bootstrap again"
                    )
                how = "adopted the existing group"
            StaffRole.objects.create(key=role.key, group=group)
        wanted = {permission.pk for permission in permissions_for(role)}
        held = set(group.permissions.values_list("pk", flat=True))
        if wanted != held:
            group.permissions.set(wanted)
            how += f", permissions set ({len(wanted - held)} added, {len(held - wanted)} removed)"
        else:
            how += ", unchanged"
        report.append(f"Role {role.key} ({group.name}, {len(wanted)} permissions): {how}.")
    return report


# --- classes and roles ------------------------------------------------------------------------------------


def role_groups():
    return Group.objects.filter(staff_role__isnull=False)


def class_groups():
    """Every group that is a class or team, not a role: what the hub, invite codes and rosters may name."""
    return Group.objects.filter(staff_role__isnull=True)


def is_role_group(group: Group) -> bool:
    return StaffRole.objects.filter(group_id=group.pk).exists()


def check_class_group_name(name: str) -> None:
    """Raise a ValidationError if `name` is a role's group: it must not be taken (or made) for a class."""
    if name and role_groups().filter(name=name).exists():
        raise ValidationError(
            _("“%(name)s” is a staff role, not a class or team; choose another name.") % {"name": name},
            code="role_group",
        )


# --- who may act on whom ------------------------------------------------------------------------------------


def _role_members():
    return get_user_model().groups.through.objects.filter(group__staff_role__isnull=False).values("user_id")


def protected_users(queryset):
    """The accounts of `queryset` only a superuser may change: staff, superusers, members of a role."""
    return queryset.filter(Q(is_staff=True) | Q(is_superuser=True) | Q(pk__in=_role_members()))


def manageable_users(actor, queryset):
    """The accounts of `queryset` that `actor` may change (all of them for a superuser)."""
    if actor.is_superuser:
        return queryset
    return queryset.exclude(is_staff=True).exclude(is_superuser=True).exclude(pk__in=_role_members())


def is_protected(user) -> bool:
    return user.is_staff or user.is_superuser or user.groups.filter(staff_role__isnull=False).exists()


def may_manage(actor, user) -> bool:
    """Whether staff member `actor` may change `user`'s account in any way (see the module rules)."""
    return actor.is_superuser or not is_protected(user)


def is_hub_admin(user) -> bool:
    """The hub admin flag: active staff with the hub admin permission (teachers and superusers)."""
    return user.is_active and user.is_staff and user.has_perm(HUB_ADMIN_PERMISSION)


def without_superuser_fields(fieldsets):
    """`fieldsets` minus SUPERUSER_ONLY_FIELDS (and any section left empty)."""
    return without_fields(fieldsets, SUPERUSER_ONLY_FIELDS)


def without_fields(fieldsets, names):
    result = []
    for title, options in fieldsets:
        fields = tuple(f for f in options["fields"] if f not in names)
        if fields:
            result.append((title, {**options, "fields": fields}))
    return result


def on_manageable_users(action):
    """Wrap an admin action on users so that a non-superuser's selection loses its protected accounts first,
    with a warning saying how many; with none left the action does nothing."""

    @functools.wraps(action)
    def run(model_admin, request, queryset):
        allowed = manageable_users(request.user, queryset)
        left_out = queryset.count() - allowed.count()
        if left_out:
            messages.warning(
                request,
                ngettext(
                    "%(n)d staff account left out: only a superuser can change staff accounts.",
                    "%(n)d staff accounts left out: only a superuser can change staff accounts.",
                    left_out,
                )
                % {"n": left_out},
            )
        if not allowed.exists():
            return None
        return action(model_admin, request, allowed)

    return run
