"""How long the record keeps an entry: AUDIT_RETENTION_DAYS days, then `prune()` deletes it.

Rules:
- The course worker (course/worker.py), which runs all the time under run.sh and systemd, calls `prune()` when
  it starts and once a day after that; `manage.py prune_audit` does the same at once (cron, an operator).
- Idempotent: it deletes what is older than the limit at that moment, so running it twice, or from two
  processes, deletes nothing more. Deleting is done in batches, so a long record never holds one long lock.
- A prune that deleted something says so in the record itself (how many, up to when): the record shows when
  it was shortened, never silently.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from audit.kinds import Kind
from audit.models import Event
from audit.records import record

BATCH = 5000


def cutoff(now=None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(days=settings.AUDIT_RETENTION_DAYS)


def expired(now=None):
    return Event.objects.filter(time__lt=cutoff(now))


def prune(now=None) -> int:
    """Delete the entries older than AUDIT_RETENTION_DAYS; returns how many went."""
    before = cutoff(now)
    deleted = 0
    while ids := list(Event.objects.filter(time__lt=before).order_by().values_list("pk", flat=True)[:BATCH]):
        deleted += Event.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        record(Kind.RECORD_PRUNED, deleted=deleted, before=before, days=settings.AUDIT_RETENTION_DAYS)
    return deleted
