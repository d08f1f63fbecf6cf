"""/healthz: is the portal up, for uptime monitors (the full picture is `manage.py status`)."""

from http import HTTPStatus

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from deploy import health


@never_cache
@require_safe
def healthz(request):
    """For uptime monitors: 200 {"database": "ok", "cache": "ok", "worker": "ok"}, else 503 with "fail" for the
    broken part (a dead course worker hands nothing out and collects nothing at the due time).

    No login, no session, no template: three tiny queries. What failed and why is for `manage.py status`
    (and the log), never for an anonymous caller."""
    checks = [health.database(), health.cache(), health.worker()]
    status = HTTPStatus.OK if all(check.ok for check in checks) else HTTPStatus.SERVICE_UNAVAILABLE
    return JsonResponse({check.name: "ok" if check.ok else "fail" for check in checks}, status=status)
