"""Forms hold the sign-up rules; views only route.

`SignupForm.save()` creates the user and redeems the invite in one transaction, so a failure at any step
leaves neither an account without a redemption nor a use without an account.
"""

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from accounts import roles, usernames
from accounts.models import InviteCode, InviteError, normalize_code

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


class SignupForm(auth_forms.UserCreationForm):
    invite_code = forms.CharField(
        label=_("Invite code"),
        max_length=64,
        help_text=_("Given to you by your teacher or team lead."),
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}),
    )

    class Meta(auth_forms.UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
        field_classes = {"username": NewUsernameField}

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
        username = self.cleaned_data.get("username")
        if username and User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(User._meta.get_field("username").error_messages["unique"], code="unique")
        return username

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
                InviteCode.redeem(self.cleaned_data["invite_code"], user)
        except InviteError as exc:
            self.add_error("invite_code", forms.ValidationError(exc.messages[0], code=exc.code))
            return None
        except IntegrityError:
            self.add_error("username", User._meta.get_field("username").error_messages["unique"])
            return None
        return user


class LoginForm(auth_forms.AuthenticationForm):
    """Django's login form, with the username folded the same way sign-up folds it."""

    username = UsernameField(widget=forms.TextInput(attrs={"autofocus": True}))

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            # Inactive accounts never authenticate. One still waiting for approval, with the right password,
            # is told so (the view shows the waiting page) instead of "wrong password"; nobody else learns
            # anything, since the password must match first.
            waiting = User.objects.filter(
                username=self.cleaned_data.get("username") or "", is_active=False, awaiting_approval=True
            ).first()
            if waiting is not None and waiting.check_password(self.cleaned_data.get("password") or ""):
                raise forms.ValidationError(
                    _("Your account is waiting for approval."), code="awaiting_approval"
                ) from None
            raise


class AdminUserCreationForm(auth_forms.AdminUserCreationForm):
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
    expires_at = forms.DateTimeField(label=_("Expires at"), required=False, help_text=_("Leave blank to never expire."))
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
        return codes
