"""Announcements on every portal page (templates/includes/announcements.html, included by base.html)."""

import logging

from django.db import DatabaseError

from staff.models import Announcement

log = logging.getLogger(__name__)


def _current():
    try:
        return list(Announcement.objects.current()[:5])
    except DatabaseError as exc:  # an announcement is never worth failing the page it decorates
        log.warning("announcements left out of the page: %s", exc)
        return []


def announcements(request):
    # Lazy: pages that never render base.html (JSON, redirects) never run the query.
    return {"announcements": _current}
