"""Forms hold the sign-up rules; views only route.

`SignupForm.save()` creates the user and redeems the invite in one transaction, so a failure at any step
leaves neither an account without a redemption nor a use without an account.
"""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import roles, usernames
from accounts.expiry import ExpiryField
from accounts.models import InviteCode, InviteError, normalize_code, record_invites_made
from accounts.password_forms import ErrorsUnderFirstPassword
from audit.kinds import Kind
from audit.receivers import record_failed_login
from audit.records import record

User = get_user_model()


class UsernameField(auth_forms.UsernameField):
    """Django's username field plus our normalisation, so `Alice ` is checked and stored as `alice`."""

    def to_python(self, value):
        return usernames.normalize(super().to_python(value))

    def widget_attrs(self, widget):
        return {
            **super().widget_attrs(widget),
            "autocapitalize": "none",
            "autocomplete": "username",
            "spellcheck": "false",
        }


class NewUsernameField(UsernameField):
    """A username being given to an account (sign-up, admin): also refused when it is retired."""

    def validate(self, value):
        super().validate(value)
        if value:
            usernames.check_not_retired(value)


class SignupForm(ErrorsUnderFirstPassword, auth_forms.UserCreationForm):
    """Rule: nothing about other accounts until the invite code is right. Whether a username is taken (or
    retired) is checked only when the code is usable, so a blank, wrong, expired or used-up code never tells
    anyone which names exist (only unknown codes are counted, accounts/throttle.py); the code's own error
    shows alone. Rules about the name itself (length, characters, reserved names) show at once."""

    invite_code = forms.CharField(
        label=_("Invite code"),
        max_length=64,
        help_text=_("Given to you by your teacher or team lead."),
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}),
    )

    class Meta(auth_forms.UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
        field_classes = {"username": UsernameField}  # not NewUsernameField: its retired check waits for the code

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].max_length = usernames.MAX_LENGTH
        self.fields["username"].widget.attrs["maxlength"] = usernames.MAX_LENGTH
        # SIGNUP_EMAIL: off (no field), optional or required. The address is only for password reset mails.
        mode = settings.SIGNUP_EMAIL
        if mode == "off":
            del self.fields["email"]
        else:
            email = self.fields["email"]
            email.required = mode == "required"
            email.widget.attrs["autocomplete"] = "email"
            email.help_text = (
                _("Used only to reset your password if you forget it.")
                if mode == "required"
                else _("Optional. Used only to reset your password if you forget it.")
            )

    def clean_username(self):
        return self.cleaned_data.get("username")  # taken or retired: in clean(), once the code is known good

    def clean(self):
        cleaned = super().clean()
        username = cleaned.get("username")
        if username and not self.has_error("invite_code"):
            try:
                usernames.check_not_retired(username)
                if User.objects.filter(username__iexact=username).exists():
                    raise forms.ValidationError(
                        User._meta.get_field("username").error_messages["unique"], code="unique"
                    )
            except forms.ValidationError as exc:
                self.add_error("username", exc)
        return cleaned

    def validate_unique(self):
        # The model's own "already exists" check, after clean(): also only with a usable code.
        if not self.has_error("invite_code"):
            super().validate_unique()

    def clean_invite_code(self):
        raw = self.cleaned_data["invite_code"]
        try:
            InviteCode.check_code(raw)
        except InviteError as exc:
            raise forms.ValidationError(exc.messages[0], code=exc.code) from None
        return normalize_code(raw)

    def save(self, commit=True):
        """Create the account and take one use of the invite atomically.

        Returns None (with errors added to the form) when a concurrent request won the race for the last
        use of the code or for the username.
        """
        # Hashes the password (about half a second of CPU on purpose): before the transaction, which on SQLite
        # holds the database's write lock from its start and would make every other sign-up and login wait.
        user = super().save(commit=False)
        try:
            with transaction.atomic():
                # A code that needs approval makes an account that starts inactive (see User.awaiting_approval).
                needs_approval = InviteCode.objects.filter(
                    code=self.cleaned_data["invite_code"], needs_approval=True
                ).exists()
                user.is_active = not needs_approval
                user.awaiting_approval = needs_approval
                user.save()
                redemption = InviteCode.redeem(self.cleaned_data["invite_code"], user)
        except InviteError as exc:
            self.add_error("invite_code", forms.ValidationError(exc.messages[0], code=exc.code))
            return None
        except IntegrityError:
            self.add_error("username", User._meta.get_field("username").error_messages["unique"])
            return None
        # The request being served supplies the address and device (audit/records.py); the code stays out.
        record(Kind.SIGNED_UP, actor=user, subject=user, invite=redemption.invite_id, needs_approval=needs_approval)
        return user


class LoginForm(auth_forms.AuthenticationForm):
    """Django's login form, with the username folded the same way sign-up folds it, and the shared-computer box
    (accounts/sessions.py: the session then ends with the browser and after a short idle time).

    Inactive accounts never log in (Django's ModelBackend refuses them). With the right password, one waiting
    for approval is told so (the view shows the waiting page) and one deactivated by staff is told to ask the
    teacher; with a wrong one, both get the usual error, so nobody learns that an account exists without its
    password. Either way the password is checked exactly once, as for any other attempt, so the answer takes
    no longer for an inactive account than for a missing one.
    """

    username = UsernameField(widget=forms.TextInput(attrs={"autofocus": True}))
    shared_pc = forms.BooleanField(label=_("This is a shared computer"), required=False)
    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        # Django's says "both fields may be case-sensitive"; usernames are case-folded (accounts.usernames).
        "invalid_login": _("Please enter a correct username and password. The password is case-sensitive."),
        "inactive": _("This account has been deactivated. Contact your teacher."),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        minutes = max(settings.SHARED_PC_IDLE_SECONDS // 60, 1)
        self.fields["shared_pc"].help_text = ngettext(
            "On a lab or library computer: you are logged out when the browser closes, or after %(n)d minute "
            "without use.",
            "On a lab or library computer: you are logged out when the browser closes, or after %(n)d minutes "
            "without use.",
            minutes,
        ) % {"n": minutes}

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        inactive = User.objects.filter(username=username, is_active=False).first() if username and password else None
        if inactive is None:
            return super().clean()  # authenticate(): only an active account gets in
        # (authenticate() is not asked, so Django's user_login_failed is not sent: the record hears it here)
        record_failed_login(self.request, username, inactive=True)
        if not inactive.check_password(password):
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(inactive)
        raise self.get_invalid_login_error()  # not reached: confirm_login_allowed refuses every inactive account

    def confirm_login_allowed(self, user):
        if not user.is_active and user.awaiting_approval:
            raise forms.ValidationError(_("Your account is waiting for approval."), code="awaiting_approval")
        super().confirm_login_allowed(user)  # "inactive" for the others


class StaffLoginForm(AdminAuthenticationForm):
    """The admin's login form (staff accounts only; any other account gets the same "wrong password" error,
    which the throttle counts), with the username folded like everywhere else."""

    username = UsernameField(widget=forms.TextInput(attrs={"autofocus": True}))
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter the correct username and password for a staff account. The password is case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user):
        if not user.is_staff:  # the password was right, so Django's user_login_failed never fires: record it here
            record_failed_login(self.request, user.get_username(), not_staff=True)
        super().confirm_login_allowed(user)


class AdminUserCreationForm(ErrorsUnderFirstPassword, auth_forms.AdminUserCreationForm):
    class Meta(auth_forms.AdminUserCreationForm.Meta):
        model = User
        fields = ("username",)
        field_classes = {"username": NewUsernameField}


class AdminUserChangeForm(auth_forms.UserChangeForm):
    class Meta(auth_forms.UserChangeForm.Meta):
        model = User
        field_classes = {"username": NewUsernameField}


class GenerateInvitesForm(forms.Form):
    """Staff: make a batch of random codes with the same settings (e.g. one per student)."""

    count = forms.IntegerField(label=_("How many codes"), min_value=1, max_value=500, initial=10)
    max_uses = forms.IntegerField(
        label=_("Uses per code"), min_value=1, required=False, initial=1, help_text=_("Leave blank for unlimited.")
    )
    expires_at = ExpiryField(label=_("Expires at"), required=False, help_text=_("Leave blank to never expire."))
    group = forms.ModelChoiceField(label=_("Group"), queryset=None, required=False)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = roles.class_groups().order_by("name")  # never a staff role

    @transaction.atomic
    def save(self, created_by):
        data = self.cleaned_data
        codes = []
        for _i in range(data["count"]):
            invite = InviteCode(
                max_uses=data["max_uses"],
                expires_at=data["expires_at"],
                group=data["group"],
                note=data["note"],
                created_by=created_by,
            )
            while InviteCode.objects.filter(code=invite.code).exists():
                invite.code = InviteCode._meta.get_field("code").default()
            invite.save()
            codes.append(invite)
        record_invites_made(codes, by=created_by)
        return codes
