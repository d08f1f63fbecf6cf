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


def _usage(request):
    group = request.GET.get("group", "")
    order = request.GET.get("o", "username")
    data = usage_data.snapshot()
    rows = usage_data.rows(data, group=group, order=order)
    context = {
        **admin.site.each_context(request),
        "title": _("Usage"),
        "rows": rows,
        "groups": Group.objects.order_by("name"),
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
        # Known when the hub gave a figure for at least one running server.
        "memory_known": bool(data.memory) or not any(row["running"] for row in rows),
        "memory_problem": data.memory_problem,
        "engine_problem": data.engine_problem,
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
