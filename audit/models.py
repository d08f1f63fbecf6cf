"""One entry of the record: when, what, who did it, to whom, from where, and the details that matter.

Rules:
- `actor` and `subject` point at accounts while they exist; their names are copied into `actor_name` and
  `subject_name`, so deleting an account (SET_NULL) keeps its history readable and searchable.
- `kind` stores a value of `audit.kinds.Kind` without a list of choices (a new kind needs no migration).
- `detail` holds counts, ids, names and flags; never a password, a token, a code or a one-time link
  (audit/records.py leaves out any detail whose name says it might be one; tests/audit scans every kind).
- Entries are never changed; superusers read them, nobody edits or deletes them in the admin, and
  `audit.retention.prune()` removes those older than AUDIT_RETENTION_DAYS.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit import kinds

DEVICE_LENGTH = 200


class Event(models.Model):
    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    kind = models.CharField(_("kind"), max_length=40, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("actor"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    actor_name = models.CharField(_("actor's name"), max_length=150, blank=True)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("account"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    subject_name = models.CharField(_("account's name"), max_length=150, blank=True)
    address = models.GenericIPAddressField(_("address"), null=True, blank=True)
    device = models.CharField(_("device"), max_length=DEVICE_LENGTH, blank=True)
    detail = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        ordering = ["-time", "-pk"]
        # Superusers only (audit/admin.py): no permission exists that could hand it to anyone else.
        default_permissions = ()

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.kind_label}"

    @property
    def kind_label(self) -> str:
        return kinds.label(self.kind)
