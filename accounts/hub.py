"""The portal's narrow client for the JupyterHub REST API (as the hub service `portal`).

Only what the portal needs: stop a user's server when staff deactivate the account. The hub may be down
(e.g. portal-only maintenance); then the call logs and returns False, and the hub's own auth refresh still
locks the user out within its refresh age, because their tokens are already revoked.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

log = logging.getLogger(__name__)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def _request(method: str, path: str, timeout: float = 5.0):
    request = urllib.request.Request(
        settings.HUB_API_URL + path,
        method=method,
        headers={"Authorization": f"token {settings.HUB_API_TOKEN}", "Accept": "application/json"},
    )
    with _OPENER.open(request, timeout=timeout) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


def stop_server(username: str) -> bool:
    """Ask the hub to stop the user's default server now. True if the hub accepted or had nothing to stop."""
    path = f"/users/{urllib.parse.quote(username)}/server"
    try:
        status, _ = _request("DELETE", path)
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 404):  # no such hub user, or no server running
            return True
        log.warning("hub refused to stop the server of %s: HTTP %s", username, exc.code)
        return False
    except (urllib.error.URLError, OSError) as exc:
        log.warning("hub unreachable, could not stop the server of %s: %s", username, exc)
        return False
    log.info("asked the hub to stop the server of %s (HTTP %s)", username, status)
    return True
