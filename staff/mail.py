"""Send one e-mail and, when the mail server fails, record it for staff (admin: failed e-mails).

`accounts` imports this module (and only this one) from `staff`: a reset mail that fails must be visible to
staff, not just a traceback in the log.
"""

import logging
import smtplib
import socket

from django.core.mail import get_connection

from staff.models import MailFailure

log = logging.getLogger(__name__)
# What a mail server (or the lack of one) can raise: refused connection, timeout, TLS failure, 4xx/5xx.
MAIL_ERRORS = (smtplib.SMTPException, OSError, socket.timeout)


def send(message, purpose: str, user=None) -> bool:
    """Send `message` (an EmailMessage); False, with a MailFailure row and a log line, if it failed."""
    try:
        message.send(fail_silently=False)
        return True
    except MAIL_ERRORS as exc:
        record(", ".join(message.to), purpose, exc, subject=message.subject, user=user)
        return False


def check_server(purpose: str, recipient: str = "") -> bool:
    """Open and close a connection to the mail server, as a send would; False (recorded) if that fails."""
    try:
        connection = get_connection(fail_silently=False)
        connection.open()
        connection.close()
        return True
    except MAIL_ERRORS as exc:
        record(recipient, purpose, exc)
        return False


def record(recipient: str, purpose: str, exc: BaseException, subject: str = "", user=None) -> None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    log.warning("could not send the %s e-mail to %s: %s", purpose, recipient or "(no recipient)", error)
    MailFailure.objects.create(
        recipient=recipient[:254], subject=subject[:200], purpose=purpose, error=error, user=user
    )
