"""The second factor's pages (rules in accounts/otp.py): the code page, the enrolment page and the page that
shows the backup codes once. Every POST that checks a code goes through the login's guess limits first."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import events, otp, throttle

# The codes made at enrolment wait here for the one page that shows them.
_BACKUP_CODES_KEY = "cfps_otp_backup_codes"


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return ""


def _onward(request):
    return redirect(_next(request) or "admin:index")


def _check(request, form):
    """Run `form` (a CodeForm) for a POST under the guess limits: (response to return, or None)."""
    attempt = throttle.second_factor_attempt(request)
    if refused := attempt.refusal():
        events.second_factor_failed.send(sender=__name__, user=request.user, request=request, locked=True)
        return refused
    if form.is_valid():
        return None
    if form.is_wrong_code():
        events.second_factor_failed.send(sender=__name__, user=request.user, request=request, locked=form.locked)
        if refused := attempt.failed():
            return refused
    return None


@never_cache
@sensitive_post_parameters("code")
@login_required
def verify(request):
    if not otp.is_staff_account(request.user) or otp.is_verified(request):
        return _onward(request)
    if not otp.has_authenticator(request.user):
        return otp.verification_redirect(request, _next(request))
    form = otp.CodeForm(request.user, request.POST if request.method == "POST" else None)
    if form.is_bound:
        if refused := _check(request, form):
            return refused
        if form.is_valid():
            method = "totp" if isinstance(form.verified_device, otp.TOTPDevice) else "backup"
            otp.verified(request, form.verified_device, method)
            return _onward(request)
    return render(request, "accounts/otp/verify.html", {"form": form, "next": _next(request)})


@never_cache
@sensitive_post_parameters("code")
@login_required
def setup(request):
    if not otp.is_staff_account(request.user) or otp.is_verified(request):
        return _onward(request)
    if otp.has_authenticator(request.user):  # enrolled: that device must be used (module rules)
        return otp.verification_redirect(request, _next(request))
    device = otp.pending_authenticator(request.user)
    form = otp.CodeForm(
        request.user, request.POST if request.method == "POST" else None, allow_backup=False, device=device
    )
    if form.is_bound:
        if refused := _check(request, form):
            return refused
        if form.is_valid():
            request.session[_BACKUP_CODES_KEY] = otp.confirm(request, form)
            target = _next(request)
            return redirect(reverse("otp_backup_codes") + (f"?{urlencode({'next': target})}" if target else ""))
    context = {
        "form": form,
        "next": _next(request),
        "qr_svg": otp.qr_svg(device),
        "secret": otp.secret_text(device),
        "account": request.user.get_username(),
    }
    return render(request, "accounts/otp/setup.html", context)


@never_cache
@login_required
def backup_codes(request):
    """The backup codes made at enrolment, shown once: a reload finds none and goes on."""
    codes = request.session.pop(_BACKUP_CODES_KEY, None)
    if not codes or not otp.is_staff_account(request.user):
        return _onward(request)
    shown = [otp.show_code(code) for code in codes]
    return render(request, "accounts/otp/backup_codes.html", {"codes": shown, "next": _next(request)})
