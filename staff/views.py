"""Staff pages (usage overview, stop a server) and the announcements feed the hub's pages read.

Rules: the usage page needs the `accounts.view_usage` permission, the stop button `accounts.stop_server` (both
roles have both: accounts.roles) and, for a staff account's server, a superuser; anyone else gets a 403.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from accounts import hub, ratelimits, roles
from staff import usage as usage_data
from staff.models import Announcement

User = get_user_model()


def _usage(request):
    if not request.user.has_perm("accounts.view_usage"):
        raise PermissionDenied
    group = request.GET.get("group", "")
    order = request.GET.get("o", "username")
    data = usage_data.snapshot()
    rows = usage_data.rows(data, group=group, order=order)
    # The stop button only where pressing it is allowed (_stop_server checks again).
    may_stop = request.user.has_perm("accounts.stop_server")
    protected = set()
    if not request.user.is_superuser:
        protected = set(roles.protected_users(User.objects.all()).values_list("pk", flat=True))
    for row in rows:
        row["may_stop"] = may_stop and row["user"].pk not in protected
    context = {
        **admin.site.each_context(request),
        "title": _("Usage"),
        "rows": rows,
        "groups": Group.objects.order_by("name"),
        "group": group,
        "order": order,
        "columns": [
            ("username", _("username")),
            (None, _("name")),
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
    if not request.user.has_perm("accounts.stop_server"):
        raise PermissionDenied
    username = request.POST.get("username", "")
    target = User.objects.filter(username=username).first()
    if target is None:
        messages.error(request, _("No such user."))
    elif not roles.may_manage(request.user, target):
        raise PermissionDenied
    elif hub.stop_server(username):
        messages.success(request, _("Asked the hub to stop the server of %(name)s.") % {"name": username})
    else:
        messages.error(
            request, _("The hub did not stop the server of %(name)s; see the portal log.") % {"name": username}
        )
    back = request.POST.get("back", "")
    return redirect(back if back.startswith(reverse("staff_usage")) else reverse("staff_usage"))


stop_server = admin.site.admin_view(_stop_server)


@ratelimits.ANNOUNCEMENTS  # outside the cache header: a refusal is never cached
@cache_control(max_age=30, public=True)
def announcements_json(request):
    """The current announcements, for the hub's pages (hubconfig/templating.py reads it over loopback); limited
    per client address (accounts/ratelimits.py)."""
    items = [{"message": a.message, "level": a.level} for a in Announcement.objects.current()[:5]]
    return JsonResponse({"announcements": items})
