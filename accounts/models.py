"""Accounts and invite codes.

Rules:
- A username is stored normalised (see `accounts.usernames`), whatever path created it: sign-up, admin,
  `createsuperuser`, `bootstrap`. `User.save()` is the last line of defence and refuses an invalid name.
- An invite code is stored normalised too (trimmed, upper case), so lookups are exact and case-insensitive.
- Redeeming a code is one conditional UPDATE inside the caller's transaction: the database, not Python,
  decides whether a use is left, so N uses yield exactly N accounts however many requests race.
- Every code made is in the record of who did what (`record_invites_made`), never its text.
"""

import re
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import usernames

# No 0/O, 1/I/L: codes are read aloud in class and copied from slides.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")  # CJK ideographs: a Chinese name


def generate_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(value) -> str:
    return "".join(str(value or "").split()).upper()


class AccountUserManager(UserManager):
    def get_by_natural_key(self, username):
        return self.get(**{self.model.USERNAME_FIELD: usernames.normalize(username)})


class User(AbstractUser):
    username = models.CharField(
        _("username"),
        max_length=150,
        unique=True,
        validators=[usernames.UsernameValidator()],
        help_text=_("3-32 characters: lowercase letters, digits, '-' and '_'."),
        error_messages={"unique": _("This username is already taken.")},
    )

    must_change_password = models.BooleanField(
        _("must change password"),
        default=False,
        help_text=_("Set by a temporary password from staff: the user must choose a new one at the next login."),
    )
    # Accounts from an invite code that needs approval start inactive with this set; staff approval turns
    # both around. Being inactive is what keeps them out everywhere (login, OAuth, the hub), so no separate
    # check can be forgotten; this flag only tells "waiting" apart from "deactivated by staff".
    awaiting_approval = models.BooleanField(
        _("waiting for approval"),
        default=False,
        help_text=_("Signed up with an invite code that needs approval; cannot log in until staff approve."),
    )

    objects = AccountUserManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        # Besides add/change/delete/view: what the staff roles (accounts.roles) hand out. Names as Django's own
        # (stored in the database at migrate time, shown untranslated like "Can add user").
        permissions = [
            ("view_usage", "Can see the usage page"),
            ("stop_server", "Can stop a user's JupyterLab server"),
            ("hub_admin", "Is a JupyterHub admin"),
        ]

    @classmethod
    def normalize_username(cls, username):
        return usernames.normalize(username)

    def get_full_name(self):
        """The name shown beside the username. A roster puts the whole name in first_name; a Chinese name typed
        as 名 and 姓 in the admin reads family name first, without a space (张三), unlike "Lei Li"."""
        first, last = self.first_name.strip(), self.last_name.strip()
        if first and last and _HAN.search(first + last):
            return last + first
        return super().get_full_name()

    def clean(self):
        super().clean()
        self.username = usernames.normalize(self.username)

    def save(self, *args, **kwargs):
        self.username = usernames.normalize(self.username)
        usernames.UsernameValidator()(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "username" in update_fields:
            usernames.check_not_retired(self.username)
        super().save(*args, **kwargs)

    def set_password(self, raw_password):
        # Any password the user chooses (change, reset, set-password link) ends a temporary one.
        super().set_password(raw_password)
        self.must_change_password = False

    def set_temporary_password(self, raw_password):
        """Staff-given password: works for one login, then the user must choose their own."""
        super().set_password(raw_password)
        self.must_change_password = True


class InviteCodeQuerySet(models.QuerySet):
    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(
            Q(is_active=True),
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            Q(max_uses__isnull=True) | Q(use_count__lt=F("max_uses")),
        )


class InviteError(ValidationError):
    """Why a code cannot be used; `code` is one of unknown/inactive/expired/used_up."""


class InviteCode(models.Model):
    code = models.CharField(
        _("code"),
        max_length=64,
        unique=True,
        default=generate_code,
        help_text=_("Matched without regard to case or spaces. Leave the suggested random code or type your own."),
    )
    max_uses = models.PositiveIntegerField(
        _("maximum uses"), null=True, blank=True, help_text=_("Leave blank for unlimited.")
    )
    use_count = models.PositiveIntegerField(_("uses"), default=0, editable=False)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Leave blank to never expire.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    group = models.ForeignKey(
        Group,
        verbose_name=_("group"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invite_codes",
        # A class or team, never a staff role (accounts.roles): checked by full_clean() and every model form.
        limit_choices_to={"staff_role__isnull": True},
        help_text=_("New users who sign up with this code join this group (their team)."),
    )
    needs_approval = models.BooleanField(
        _("needs approval"),
        default=False,
        help_text=_("Accounts made with this code cannot log in until staff approve them."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = InviteCodeQuerySet.as_manager()

    class Meta:
        verbose_name = _("invite code")
        verbose_name_plural = _("invite codes")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(use_count__lte=F("max_uses")),
                name="invite_use_count_within_max",
                violation_error_message=_("Maximum uses cannot be lower than the uses so far."),
            )
        ]

    def __str__(self):
        return self.code

    def save(self, *args, **kwargs):
        self.code = normalize_code(self.code)
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        self.code = normalize_code(self.code)
        if not self.code:
            raise ValidationError({"code": _("Enter a code.")})
        # The check constraint guards the database; this gives staff a message beside the field first
        # (forms skip constraints on fields they do not edit, and use_count is not editable).
        if self.max_uses is not None and self.max_uses < self.use_count:
            raise ValidationError(
                {"max_uses": _("Maximum uses cannot be lower than the uses so far (%(n)d).") % {"n": self.use_count}}
            )

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_used_up(self):
        return self.max_uses is not None and self.use_count >= self.max_uses

    @property
    def remaining(self):
        return None if self.max_uses is None else max(self.max_uses - self.use_count, 0)

    def problem(self):
        """The reason this code cannot be used now, or None."""
        if not self.is_active:
            return InviteError(
                _("This invite code has been deactivated. Ask your teacher for a new one."), code="inactive"
            )
        if self.is_expired:
            return InviteError(_("This invite code has expired. Ask your teacher for a new one."), code="expired")
        if self.is_used_up:
            return InviteError(
                _("This invite code has been used up: all its places are taken. Ask your teacher for a new one."),
                code="used_up",
            )
        return None

    @classmethod
    def check_code(cls, raw) -> "InviteCode":
        """Look a code up for a friendly early answer; raises InviteError. Not a reservation."""
        code = normalize_code(raw)
        invite = cls.objects.filter(code=code).first() if code else None
        if invite is None:
            raise InviteError(_("This invite code does not exist. Check it for typos."), code="unknown")
        if problem := invite.problem():
            raise problem
        return invite

    @classmethod
    def redeem(cls, raw, user) -> "InviteRedemption":
        """Take one use of the code for `user`. Call inside transaction.atomic() with the user's creation,
        so a failure afterwards gives the use back."""
        invite = cls.check_code(raw)
        taken = cls.objects.usable().filter(pk=invite.pk).update(use_count=F("use_count") + 1)
        if not taken:
            # Another request took the last use (or staff changed the code) since check_code().
            invite.refresh_from_db()
            raise invite.problem() or InviteError(_("This invite code cannot be used right now."), code="unusable")
        if invite.group_id:
            user.groups.add(invite.group_id)
        return InviteRedemption.objects.create(invite=invite, user=user)


def record_invites_made(invites, by=None) -> None:
    """One entry in the record of who did what for a batch of new codes (admin, create_invite, bootstrap): how
    many, their settings and ids, never the codes themselves."""
    from audit.kinds import Kind
    from audit.records import record

    if not invites:
        return
    first = invites[0]
    record(
        Kind.INVITES_CREATED,
        actor=by,
        count=len(invites),
        ids=[invite.pk for invite in invites[:100]],
        max_uses=first.max_uses,
        expires_at=first.expires_at,
        group=first.group.name if first.group_id else None,
        needs_approval=first.needs_approval,
        note=first.note,
    )


class InviteRedemption(models.Model):
    invite = models.ForeignKey(
        InviteCode, verbose_name=_("invite code"), on_delete=models.PROTECT, related_name="redemptions"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="redemption"
    )
    redeemed_at = models.DateTimeField(_("redeemed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("invite redemption")
        verbose_name_plural = _("invite redemptions")
        ordering = ["-redeemed_at"]

    def __str__(self):
        return f"{self.user} ← {self.invite}"


class StaffRole(models.Model):
    """Marks a Django group as a staff role (accounts.roles), so it is never taken for a class or team.

    Groups are both: classes and teams (team volumes, hub groups, the `groups` claim) and, with a row here,
    the roles that hold staff permissions. Only `accounts.roles.ensure_roles()` writes this table.
    """

    class Key(models.TextChoices):
        TEACHER = "teacher", _("teacher")
        TA = "ta", _("teaching assistant")

    key = models.CharField(_("role"), max_length=16, unique=True, choices=Key.choices)
    group = models.OneToOneField(Group, verbose_name=_("group"), on_delete=models.CASCADE, related_name="staff_role")

    class Meta:
        verbose_name = _("staff role")
        verbose_name_plural = _("staff roles")
        default_permissions = ()  # nobody edits roles in the admin; bootstrap sets them

    def __str__(self):
        return f"{self.get_key_display()} ({self.group.name})"


class RetiredUsername(models.Model):
    """A name that belonged to a deleted (or renamed) account: it is never given to anyone again.

    The hub knows people by name only, and their files live in the Docker volume `jupyterhub-user-<name>`
    (`var/users/<name>/` with the local spawner), which deleting the account keeps. A new account with the
    same name would open them; so the name stays taken (see `usernames.check_not_retired`).
    """

    class Reason(models.TextChoices):
        DELETED = "deleted", _("account deleted")
        RENAMED = "renamed", _("account renamed")

    username = models.CharField(_("username"), max_length=150, unique=True)
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    retired_at = models.DateTimeField(_("retired at"), default=timezone.now)

    class Meta:
        verbose_name = _("retired username")
        verbose_name_plural = _("retired usernames")
        ordering = ["-retired_at"]

    def __str__(self):
        return self.username


class PendingHubCall(models.Model):
    """A call the portal must make to the hub (remove, make or update a hub user, start a server), kept until the
    hub confirms it.

    Written in the same transaction as the change that needs it (an account made, regrouped, deactivated,
    deleted, renamed; a student's login), so an unreachable hub never loses it; `accounts.hub` carries it out
    after the commit and retries (see its docstring for when and in which order). One row per user and kind:
    asking again only renews the row.
    """

    class Kind(models.TextChoices):
        REMOVE = "remove", _("remove hub user")
        SYNC = "sync", _("create or update hub user")
        START = "start", _("start server")

    username = models.CharField(_("hub username"), max_length=150)
    kind = models.CharField(_("call"), max_length=8, choices=Kind.choices, default=Kind.REMOVE)
    reason = models.CharField(_("reason"), max_length=32)
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("pending hub call")
        verbose_name_plural = _("pending hub calls")
        ordering = ["requested_at"]
        constraints = [models.UniqueConstraint(fields=["username", "kind"], name="one_pending_hub_call_per_kind")]

    def __str__(self):
        return f"{self.username} ({self.kind})"


class Authenticator(TOTPDevice):
    """A staff member's authenticator app (django-otp's TOTP device), as the admin shows it to superusers.

    A proxy: the rows are django-otp's own; this only gives them a Chinese name in the admin's accounts
    section, where a superuser deletes one to reset a lost phone (accounts/otp.py).
    """

    class Meta:
        proxy = True
        verbose_name = _("authenticator")
        verbose_name_plural = _("authenticators")


class SharedPcLogin(models.Model):
    """A login made with 这是公共电脑 (a shared computer) ticked, while it lasts (accounts/sessions.py).

    The session knows it too; this row is what the OAuth provider asks, without a session, whether the hub's
    tokens of that person still stand: `last_seen` follows the session's last request (rewritten at most once
    a minute), and a row idle past SHARED_PC_IDLE_MINUTES ends with every token of the user revoked.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="shared_pc_logins"
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_seen = models.DateTimeField(_("last request"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("shared-computer login")
        verbose_name_plural = _("shared-computer logins")
        default_permissions = ()
        indexes = [models.Index(fields=["user", "ended_at"])]

    def __str__(self):
        return f"{self.user} @ {self.started_at:%Y-%m-%d %H:%M}"
