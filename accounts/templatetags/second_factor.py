"""{% second_factor_offer as offer %}: whether to offer the signed-in staff member to set up the second factor
(STAFF_OTP=optional and none set up yet; with `required` the enrolment page comes at login, accounts/otp.py);
{% second_factor_pending as pending %}: whether the session must still give its code."""

from django import template
from django.conf import settings

from accounts import otp

register = template.Library()


@register.simple_tag(takes_context=True)
def second_factor_offer(context) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    return settings.STAFF_OTP == "optional" and otp.is_staff_account(user) and not otp.has_authenticator(user)


@register.simple_tag(takes_context=True)
def second_factor_pending(context) -> bool:
    """Whether the page is shown to a staff session that must still give its code (the bar then offers only
    logging out: every other link would lead back to the code page)."""
    request = context.get("request")
    return request is not None and otp.verification_needed(request)
