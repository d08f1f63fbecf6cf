"""Staff pages (usage overview, stop a server) and the announcements feed the hub's pages read."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from accounts import hub
from staff import usage as usage_data
from staff.models import Announcement

SORTS = {
    "username": lambda row: row["user"].username,
    "last_login": lambda row: row["user"].last_login,
    "running": lambda row: row["running"],
    "started": lambda row: row["started"],
    "activity": lambda row: row["activity"],
    "memory": lambda row: row["memory"],
}


def _sorted(rows, order):
    """Sort by a column; rows without a value (never logged in, no server) go last either way."""
    field = order.lstrip("-")
    key = SORTS.get(field, SORTS["username"])
    known = [row for row in rows if key(row) is not None]
    unknown = [row for row in rows if key(row) is None]
    return sorted(known, key=key, reverse=order.startswith("-")) + unknown


def _usage(request):
    users = get_user_model().objects.order_by("username").prefetch_related("groups")
    groups = Group.objects.order_by("name")
    group = request.GET.get("group", "")
    if group:
        users = users.filter(groups__name=group)
    data = usage_data.snapshot()
    rows = []
    for user in users:
        hub_user = data.hub.get(user.username) if data.hub is not None else None
        rows.append(
            {
                "user": user,
                "groups": ", ".join(g.name for g in user.groups.all()),
                "in_hub": hub_user is not None,
                "running": bool(hub_user and hub_user.server_running),
                "pending": hub_user.server_pending if hub_user else None,
                "started": hub_user.server_started if hub_user else None,
                "activity": (hub_user.server_activity or hub_user.last_activity) if hub_user else None,
                "memory": (data.memory or {}).get(user.username) if hub_user and hub_user.server_running else None,
            }
        )
    order = request.GET.get("o", "username")
    rows = _sorted(rows, order)
    context = {
        **admin.site.each_context(request),
        "title": _("Usage"),
        "rows": rows,
        "groups": groups,
        "group": group,
        "order": order,
        "columns": [
            ("username", _("username")),
            (None, _("groups")),
            ("last_login", _("Last login")),
            ("running", _("Server")),
            ("started", _("Running since")),
            ("activity", _("Last activity")),
            ("memory", _("Memory")),
        ],
        "running_count": sum(row["running"] for row in rows),
        "hub_problem": data.hub_problem,
        # Known when the engine answered and has a container for at least one running server.
        "memory_known": bool(data.memory) or not any(row["running"] for row in rows),
        "memory_problem": data.memory_problem,
    }
    return render(request, "admin/staff/usage.html", context)


usage = admin.site.admin_view(_usage)


@require_POST
def _stop_server(request):
    username = request.POST.get("username", "")
    if not get_user_model().objects.filter(username=username).exists():
        messages.error(request, _("No such user."))
    elif hub.stop_server(username):
        messages.success(request, _("Asked the hub to stop the server of %(name)s.") % {"name": username})
    else:
        messages.error(
            request, _("The hub did not stop the server of %(name)s; see the portal log.") % {"name": username}
        )
    back = request.POST.get("back", "")
    return redirect(back if back.startswith(reverse("staff_usage")) else reverse("staff_usage"))


stop_server = admin.site.admin_view(_stop_server)


@cache_control(max_age=30, public=True)
def announcements_json(request):
    """The current announcements, for the hub's pages (hubconfig/templating.py reads it over loopback)."""
    items = [{"message": a.message, "level": a.level} for a in Announcement.objects.current()[:5]]
    return JsonResponse({"announcements": items})
