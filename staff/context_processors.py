"""Announcements on every portal page (templates/includes/announcements.html, included by base.html)."""

from staff.models import Announcement


def announcements(request):
    # Lazy: pages that never render base.html (JSON, redirects) never run the query.
    return {"announcements": lambda: list(Announcement.objects.current()[:5])}
