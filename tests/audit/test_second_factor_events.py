"""The second factor's events in the record (accounts/events.py, recorded by audit/receivers.py): enrolment, a code
given, a wrong code, a reset by a superuser or by the command; never the code or the secret itself."""

from __future__ import annotations

from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.kinds import Kind
from tests.accounts.test_otp import VERIFY, code_for, enrol, password_login, wrong_code_for
from tests.audit.conftest import only
from tests.audit.test_events import as_text


def test_enrolment_a_code_a_wrong_code_and_a_reset_are_recorded_without_any_secret(
    client, staff, settings, django_capture_on_commit_callbacks
):
    settings.STAFF_OTP = "required"
    password_login(client)
    with django_capture_on_commit_callbacks(execute=True):  # (enrolment and reset are sent once committed)
        device, _ = enrol(client)
    enrolled = only(Kind.OTP_ENROLLED)
    assert (enrolled.subject_name, enrolled.actor_name) == ("teacher", "teacher")

    client.logout()
    password_login(client)
    wrong = wrong_code_for(device)
    client.post(VERIFY, {"code": wrong})
    failed = only(Kind.OTP_FAILED)
    assert failed.subject_name == "teacher" and failed.detail.get("locked") is False
    good = code_for(device, steps_ahead=1)
    client.post(VERIFY, {"code": good})
    assert only(Kind.OTP_VERIFIED).detail.get("method") == "totp"

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reset_otp", "teacher", verbosity=0)
    reset = only(Kind.OTP_RESET)
    assert reset.subject_name == "teacher" and reset.actor is None and not TOTPDevice.objects.exists()

    secret = device.key
    for event in (enrolled, failed, reset):
        text = as_text(event)
        assert wrong not in text and good not in text and secret not in text
