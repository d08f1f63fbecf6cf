"""Announcements staff post to every page, and the e-mails the portal could not send.

Rules:
- An announcement shows from its creation until `expires_at` (never expires when empty) while it is active;
  `Announcement.objects.current()` is the one query every page uses.
- A failed e-mail is recorded (recipient, subject, the mail server's error), never its body: a password-reset
  mail carries a one-time link that staff must not be able to use.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AnnouncementQuerySet(models.QuerySet):
    def current(self, now=None):
        now = now or timezone.now()
        return self.filter(Q(is_active=True), Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class Announcement(models.Model):
    LEVELS = [("info", _("Information")), ("warning", _("Warning"))]

    message = models.CharField(
        _("message"), max_length=500, help_text=_("One or two sentences, shown at the top of every page.")
    )
    level = models.CharField(_("level"), max_length=10, choices=LEVELS, default="info")
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Leave blank to show it until you deactivate it.")
    )
    is_active = models.BooleanField(_("active"), default=True)
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

    objects = AnnouncementQuerySet.as_manager()

    class Meta:
        verbose_name = _("announcement")
        verbose_name_plural = _("announcements")
        ordering = ["-created_at"]

    def __str__(self):
        return self.message[:60]

    @property
    def is_current(self):
        return self.is_active and (self.expires_at is None or self.expires_at > timezone.now())


class MailFailure(models.Model):
    recipient = models.CharField(_("recipient"), max_length=254)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    purpose = models.CharField(_("purpose"), max_length=50, help_text=_("What the e-mail was for."))
    error = models.TextField(_("error"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("failed e-mail")
        verbose_name_plural = _("failed e-mails")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.recipient}: {self.error[:60]}"
