"""Staff sign in with a second factor: a code from an authenticator app (TOTP, django-otp), or a backup code.

A staff account controls every student's account, files and server, so a password alone does not open it.

Rules:
- Who: every staff account (`is_staff` or `is_superuser`: teachers, TAs, superusers). Students are never
  asked, on any page, whatever the setting.
- STAFF_OTP=required (prod's only value): a staff member's first login asks them to enrol an authenticator,
  every later login asks for a code. STAFF_OTP=optional (dev's default): only staff who enrolled (at
  /accounts/otp/setup/, linked from the admin's home) are asked.
- After a correct password, a staff session is unverified until a correct code: StaffVerificationMiddleware
  then answers every request but these pages, logging out and the language switch with a redirect to the
  code page (or the enrolment page), so the admin, the usage page, the course pages, the password page and
  the OAuth authorization (which gives the hub its admin) are out of reach, enforced on the server. Two more
  lines check the same: the admin site's `has_permission` (AdminSite below, which portal/admin_site.py extends) and the OAuth
  authorize endpoint itself (accounts/oauth.py), which a login runs inside its own response, past the
  middleware. Verifying rotates the session key.
- Devices (django-otp's models): one TOTP device (6 digits, 30-second steps, one step of clock drift either
  way, each code accepted once) and one static device holding BACKUP_CODES backup codes, each of which works
  once. Like every TOTP server, the portal stores the shared secret (and the backup codes) in its database:
  whoever reads the database can make codes, which is why backups are owner-only (filemodes).
- Enrolment (/accounts/otp/setup/): only for a staff session with no confirmed authenticator; a session
  whose account has one must verify with it instead (so a stolen password cannot add a second phone). The
  page shows the secret as a QR code (an otpauth:// URL as inline SVG, segno) and as text for typing in;
  the same pending secret is shown until it is confirmed, so reloading the page does not invalidate a
  scanned code. One correct code confirms it, makes new backup codes (replacing any old ones) and verifies
  the session; the codes are shown once, on the next page, with a print button, and never again.
- Guesses: a wrong code is a failed guess in accounts/throttle.py's login counters for the username and
  the client address (never a device cookie's: whoever reaches this step has the password), and a locked
  attempt gets the same 429 page before its code is checked. django-otp's own per-device backoff (a wait of
  1, 2, 4, 8 ... seconds after successive wrong codes, reset by a correct one) comes on top, so slow guessing
  over days gets nowhere either.
- A lost phone: a superuser deletes the staff member's authenticator in the admin (账号与邀请 → 身份验证器,
  superusers only; a teacher or TA cannot see or touch anyone's devices), or, for the last superuser,
  `python manage.py reset_otp USERNAME`. Either removes all the account's devices (backup codes too); the
  next login enrols again, and sessions verified with the old device are no longer verified.
- Events for a record: accounts/events.py (enrolled, verified, failed, reset).
"""

from __future__ import annotations

from base64 import b32encode
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp import DEVICE_ID_SESSION_KEY, verify_token
from django_otp import login as otp_login
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import events

BACKUP_CODES = 10
TOTP_NAME = "authenticator"
BACKUP_NAME = "backup codes"
# The pages an unverified staff session may still reach (URL names).
ALLOWED_URL_NAMES = ("otp_verify", "otp_setup", "otp_backup_codes", "logout", "set_language")


# --- who is asked -------------------------------------------------------------------------------------------
def is_staff_account(user) -> bool:
    return bool(user is not None and user.is_authenticated and (user.is_staff or user.is_superuser))


def authenticator(user, confirmed: bool | None = True) -> TOTPDevice | None:
    devices = TOTPDevice.objects.filter(user=user)
    if confirmed is not None:
        devices = devices.filter(confirmed=confirmed)
    return devices.order_by("pk").first()


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def is_verified(request) -> bool:
    """Whether this session gave a correct code for `request.user`. django-otp's middleware answers for the
    user it loaded; a login inside this request replaced that user, so then the session itself is asked."""
    user = request.user
    check = getattr(user, "is_verified", None)
    if callable(check):
        return bool(check())
    persistent_id = request.session.get(DEVICE_ID_SESSION_KEY)
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    return device is not None and device.user_id == user.pk and device.confirmed


def verification_needed(request) -> bool:
    """Whether `request` comes from a staff session that must still give a code (module rules)."""
    user = getattr(request, "user", None)
    if not is_staff_account(user) or is_verified(request):
        return False
    return settings.STAFF_OTP == "required" or has_authenticator(user)


def verification_redirect(request, next_url: str = ""):
    """The redirect to the code page, or to the enrolment page for an account without an authenticator."""
    where = "otp_verify" if has_authenticator(request.user) else "otp_setup"
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    return redirect(reverse(where) + query)


def verification_required(request):
    """The redirect to the code (or enrolment) page when `request` is an unverified staff session, else None;
    afterwards the browser comes back to this very URL. Also called by the OAuth authorize endpoint."""
    if not verification_needed(request):
        return None
    return verification_redirect(request, request.get_full_path() if request.method == "GET" else "")


class StaffVerificationMiddleware:
    """An unverified staff session reaches only the code pages, logout, the language switch and static files.

    After django_otp.middleware.OTPMiddleware (which tells whether the session is verified)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if verification_needed(request):
            allowed = {reverse(name) for name in ALLOWED_URL_NAMES}
            if request.path not in allowed and not request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
                return verification_required(request)
        return self.get_response(request)


class AdminSite(admin.AdminSite):
    """The admin, for verified staff sessions only (a second line behind StaffVerificationMiddleware)."""

    def has_permission(self, request):
        return super().has_permission(request) and not verification_needed(request)


# --- enrolment ------------------------------------------------------------------------------------------------
def pending_authenticator(user) -> TOTPDevice:
    """The account's unconfirmed authenticator, made on first use; the same one until it is confirmed."""
    device = authenticator(user, confirmed=False)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def secret_text(device: TOTPDevice) -> str:
    """The secret as an authenticator app asks for it when typed in: base32, in groups of four."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL (issuer, account, secret) as an inline SVG QR code."""
    import segno

    return segno.make(device.config_url, error="m").svg_inline(scale=5, border=2, omitsize=True)


@transaction.atomic
def make_backup_codes(user) -> list[str]:
    """New backup codes for `user`, replacing any old ones; returned once, to be shown once."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _i in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def show_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _normalize(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _refusal_message(device) -> str | None:
    """django-otp's backoff: the message for a device that may not be tried yet, else None."""
    allowed, _details = device.verify_is_allowed()
    if allowed:
        return None
    return str(_("Too many wrong codes: wait a few seconds, then type the newest code."))


class CodeForm(forms.Form):
    """A code for the second factor. `clean` checks it against the user's devices, so a valid form is a
    correct code; a wrong one is the field's error with code "wrong" (what the views count as a guess)."""

    code = forms.CharField(
        label=_("Code"),
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True, "spellcheck": "false"}
        ),
    )

    def __init__(self, user, *args, allow_backup: bool = True, device: TOTPDevice | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.allow_backup, self.device = user, allow_backup, device
        self.verified_device = None
        self.locked = False  # refused by the device's backoff, not checked
        if allow_backup:
            self.fields["code"].help_text = _(
                "The 6 digits your authenticator app shows now, or one of your backup codes."
            )
        else:
            self.fields["code"].help_text = _("The 6 digits your authenticator app shows now.")

    def clean_code(self):
        code = _normalize(self.cleaned_data["code"])
        totp = self.device or authenticator(self.user)
        candidates = [totp] if code.isdigit() else []
        if self.allow_backup and not code.isdigit():
            candidates += list(StaticDevice.objects.filter(user=self.user, confirmed=True))
        for device in candidates:
            if device is None:
                continue
            if message := _refusal_message(device):
                self.locked = True
                raise forms.ValidationError(message, code="wrong")
            match = verify_token(self.user, device.persistent_id, code)  # in a transaction, the device locked
            if match is not None:
                self.verified_device = match
                return code
        raise forms.ValidationError(_("That code is not right. Type the newest code your app shows."), code="wrong")

    def is_wrong_code(self) -> bool:
        return self.has_error("code", "wrong")


def verified(request, device, method: str) -> None:
    """Mark the session verified by `device` (a new session key: the privilege changed)."""
    request.session.cycle_key()
    otp_login(request, device)
    events.second_factor_verified.send(sender=__name__, user=request.user, request=request, method=method)


@transaction.atomic
def confirm(request, form: CodeForm) -> list[str]:
    """A correct first code: the authenticator is the account's, the session verified; new backup codes."""
    device = form.verified_device
    TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = make_backup_codes(request.user)
    verified(request, device, "totp")
    transaction.on_commit(
        lambda: events.second_factor_enrolled.send(sender=__name__, user=request.user, request=request)
    )
    return codes


# --- reset --------------------------------------------------------------------------------------------------
def devices_of(user) -> list[Device]:
    return [*TOTPDevice.objects.filter(user=user), *StaticDevice.objects.filter(user=user)]


@transaction.atomic
def reset(user, actor=None, request=None) -> int:
    """Remove every device of `user` (authenticator and backup codes), so they enrol again; how many."""
    removed = 0
    for model in (TOTPDevice, StaticDevice):
        _total, per_model = model.objects.filter(user=user).delete()
        removed += per_model.get(model._meta.label, 0)  # not the backup codes deleted with their device
    if removed:
        transaction.on_commit(
            lambda: events.second_factor_reset.send(
                sender=__name__, user=user, actor=actor, request=request, devices=removed
            )
        )
    return removed


def reset_message(username: str, removed: int) -> str:
    return ngettext(
        "%(name)s's second factor was reset (%(n)d device removed): they enrol again at their next login.",
        "%(name)s's second factor was reset (%(n)d devices removed): they enrol again at their next login.",
        removed,
    ) % {"name": username, "n": removed}
