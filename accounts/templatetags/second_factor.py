"""{% second_factor_offer as offer %}: whether to offer the signed-in staff member to set up the second factor
(STAFF_OTP=optional and none set up yet; with `required` the enrolment page comes at login, accounts/otp.py)."""

from django import template
from django.conf import settings

from accounts import otp

register = template.Library()


@register.simple_tag(takes_context=True)
def second_factor_offer(context) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    return settings.STAFF_OTP == "optional" and otp.is_staff_account(user) and not otp.has_authenticator(user)
