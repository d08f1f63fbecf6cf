"""What the record holds: one line per kind, its value (stored) and its label (shown, translated).

Adding a kind is one line here and its Chinese label in locale/; the column stores the value without a list
of choices, so no migration follows. Where each kind is recorded is said beside it.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    # --- logins (audit/receivers.py: Django's auth signals; accounts/throttle.py for refusals) ---
    LOGIN = "login", _("Logged in")
    LOGIN_FAILED = "login_failed", _("Login failed")
    LOCKED_OUT = "locked_out", _("Refused after too many failed attempts")
    LOGOUT = "logout", _("Logged out")
    SESSION_IDLED_OUT = "session_idled_out", _("Session ended after idle time")  # accounts/events.py
    # --- staff's second factor (accounts/events.py, recorded by audit/receivers.py record_on) ---
    OTP_ENROLLED = "otp_enrolled", _("Authenticator enrolled")
    OTP_VERIFIED = "otp_verified", _("Second factor given")
    OTP_FAILED = "otp_failed", _("Wrong second-factor code")
    OTP_RESET = "otp_reset", _("Authenticator reset")
    SIGNED_UP = "signed_up", _("Signed up with an invite code")  # accounts/views.py
    # --- passwords (audit/receivers.py, from the page that saved it) ---
    PASSWORD_CHANGED = "password_changed", _("Password changed")
    PASSWORD_RESET_REQUESTED = "password_reset_requested", _("Password reset mail requested")  # password_reset.py
    PASSWORD_RESET_DONE = "password_reset_done", _("Password reset by mail")
    SET_PASSWORD_LINK_ISSUED = "set_password_link_issued", _("Set-password link issued")  # admin_tools, import_roster
    SET_PASSWORD_LINK_USED = "set_password_link_used", _("Password set with a link")
    TEMPORARY_PASSWORD_SET = "temporary_password_set", _("Temporary password set")
    # --- staff, roles and permissions (audit/receivers.py) ---
    STAFF_CHANGED = "staff_changed", _("Staff status changed")
    SUPERUSER_CHANGED = "superuser_changed", _("Superuser status changed")
    ROLE_CHANGED = "role_changed", _("Staff role changed")
    PERMISSIONS_CHANGED = "permissions_changed", _("Permissions changed")
    # --- the account's life (audit/receivers.py; accounts/admin.py for one made in the admin) ---
    ACCOUNT_CREATED = "account_created", _("Account created by staff")
    DEACTIVATED = "deactivated", _("Account deactivated")
    REACTIVATED = "reactivated", _("Account reactivated")
    APPROVED = "approved", _("Account approved")
    RENAMED = "renamed", _("Account renamed")
    DELETED = "deleted", _("Account deleted")
    # --- classes and codes (accounts/roster.py, accounts/models.py record_invites_made) ---
    ROSTER_IMPORTED = "roster_imported", _("Roster imported")
    INVITES_CREATED = "invites_created", _("Invite codes made")
    # --- the course and the servers (course/signals.py, course/jobs.py) ---
    COURSE_JOB_QUEUED = "course_job_queued", _("Course job queued")
    COURSE_JOB_FINISHED = "course_job_finished", _("Course job finished")
    WARMUP = "warmup", _("Servers warmed up")
    # --- the record itself (audit/retention.py) ---
    RECORD_PRUNED = "record_pruned", _("Old entries of the record deleted")


def label(value: str) -> str:
    """The kind's label, or the stored value itself for a kind this version does not know (yet, or any more)."""
    try:
        return Kind(value).label
    except ValueError:
        return value
