"""The portal's narrow client for the JupyterHub REST API (as the hub service `portal`), and the queue of hub
users the portal must remove.

Rules:
- Deactivating, deleting or renaming an account, and changing its password, remove the person's hub user
  (`DELETE /users/<name>`, scope `delete:users`, after `DELETE /users/<name>/server`, scope `servers`). That
  stops their server and deletes every hub token they hold: the API tokens they made themselves, the ones of
  their server and of its browser sessions, and the hub cookie's identity. Their files stay (the Docker
  volume or `var/users/<name>/`). Logging in again, with an active account, makes a fresh hub user: no old
  token comes back.
- The removal is written to `PendingHubRemoval` in the same transaction as the change (accounts.signals) and
  carried out after the commit, in a background thread so that staff deactivating a class never wait for 30
  servers to stop. Whatever the hub does not confirm (it is down, or a server is still stopping) stays in the
  table and is retried, at most every RETRY_SECONDS (while only a slow server stop holds it up, the thread
  itself tries again for a minute):
  - on the next request to the portal (`RetryHubRemovalsMiddleware`). A hub back from an outage asks the
    portal about every user it serves at least every HUB_AUTH_REFRESH_SECONDS (its auth refresh, on cookie
    and token requests alike), so the first use of a hub token soon triggers the retry;
  - by `manage.py retry_hub_removals` (run.sh runs it once the hub answers; cron or an operator may too).
- Every step may be repeated: the hub answering 404 (no such user, no server) counts as done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

log = logging.getLogger(__name__)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy

# A removal the hub did not confirm is tried again after this long (and never more often).
RETRY_SECONDS = 10
# While only a slow server stop holds a removal up, the background thread itself tries again this often.
STOPPING_ROUNDS = 6
# How often one portal process looks for due removals while serving requests.
CHECK_SECONDS = 5
# The hub waits up to its slow_stop_timeout (10 s) for a server to stop before it answers.
TIMEOUT_SECONDS = 20


class HubError(Exception):
    """The hub could not be asked, or did not do it; the message is one line for the log and the admin."""


class StillStopping(HubError):
    """The hub is stopping the server (it answers before a slow stop ends); worth trying again soon."""


def _request(method: str, path: str, timeout: float = TIMEOUT_SECONDS, body=None):
    request = urllib.request.Request(
        settings.HUB_API_URL + path,
        method=method,
        headers={"Authorization": f"token {settings.HUB_API_TOKEN}", "Accept": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with _OPENER.open(request, timeout=timeout) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


def _call(method: str, path: str, done: tuple[int, ...]) -> int:
    """One API call; returns the status when it is in `done` (404 always counts), else raises HubError."""
    try:
        status, _ = _request(method, path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 or exc.code in done:
            return exc.code
        detail = exc.read(300).decode("utf-8", "replace").strip()
        error = StillStopping if "stopping" in detail else HubError  # DELETE /users during a slow stop: 400
        raise error(f"{method} {path}: HTTP {exc.code} {detail}"[:300]) from None
    except (urllib.error.URLError, OSError) as exc:
        raise HubError(f"hub unreachable: {getattr(exc, 'reason', exc)}"[:300]) from None
    if status not in done:
        raise HubError(f"{method} {path}: HTTP {status}")
    return status


def stop_server(username: str) -> bool:
    """Ask the hub to stop the user's default server now. True if the hub accepted or had nothing to stop."""
    try:
        _call("DELETE", f"/users/{urllib.parse.quote(username)}/server", done=(202, 204, 400))
    except HubError as exc:
        log.warning("could not stop the server of %s: %s", username, exc)
        return False
    return True


def delete_hub_user(username: str) -> None:
    """Remove the hub user with its server and tokens; raises HubError unless the hub confirms it is gone."""
    quoted = urllib.parse.quote(username)
    # Stopping first also interrupts a server that is still starting, which DELETE /users refuses.
    if _call("DELETE", f"/users/{quoted}/server", done=(202, 204, 400)) == 202:
        raise StillStopping("the server is still stopping; the hub user is removed at the next attempt")
    _call("DELETE", f"/users/{quoted}", done=(204,))


# --- warm-ups (course/warmup.py) ---------------------------------------------------------------------------
def api(method: str, path: str, body=None, timeout: float = TIMEOUT_SECONDS):
    """One call of the hub's API as the portal; returns (status, JSON body or None), raises HubError when the hub
    cannot be asked. HTTP errors are returned as their status with the hub's message ({"message": ...})."""
    try:
        return _request(method, path, timeout=timeout, body=body)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        try:
            return exc.code, json.loads(detail)
        except ValueError:
            return exc.code, {"message": detail}
    except (urllib.error.URLError, OSError) as exc:
        raise HubError(f"hub unreachable: {getattr(exc, 'reason', exc)}"[:300]) from None


def start_server(username: str) -> int:
    """Ask the hub to start the user's default server, through its normal spawn (the same spawner, volumes,
    limits and groups as a start from the browser). 201: started, 202: starting, 400: already running or
    pending; raises HubError otherwise."""
    status, body = api("POST", f"/users/{urllib.parse.quote(username)}/server", body={})
    if status in (201, 202, 400):
        return status
    raise HubError(f"POST /users/{username}/server: HTTP {status} {(body or {}).get('message', '')}"[:300])


# --- the queue -------------------------------------------------------------------------------------------
def queue_removal(username: str, reason: str) -> None:
    """Record that the hub user must go, in the caller's transaction; it is carried out after the commit."""
    from accounts.models import PendingHubRemoval

    PendingHubRemoval.objects.update_or_create(
        username=username,
        defaults={"reason": reason, "requested_at": timezone.now(), "attempts": 0, "last_attempt_at": None},
    )
    transaction.on_commit(kick)


def _due(now=None, force: bool = False):
    from accounts.models import PendingHubRemoval

    rows = PendingHubRemoval.objects.all()
    if not force:
        cutoff = (now or timezone.now()) - timedelta(seconds=RETRY_SECONDS)
        rows = rows.filter(Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=cutoff))
    return rows


def process_pending(force: bool = False) -> tuple[list[str], list[tuple[str, HubError]]]:
    """Carry out the due removals; returns (names removed, [(name, error)] still pending)."""
    from accounts.models import PendingHubRemoval

    removed, failed = [], []
    for row in list(_due(force=force)):
        attempted_at = timezone.now()
        try:
            delete_hub_user(row.username)
        except HubError as exc:
            PendingHubRemoval.objects.filter(pk=row.pk, requested_at=row.requested_at).update(
                attempts=row.attempts + 1, last_attempt_at=attempted_at, last_error=str(exc)
            )
            log.warning("hub user %s not removed yet (%s): %s", row.username, row.reason, exc)
            failed.append((row.username, exc))
            continue
        # A request made again meanwhile (requested_at changed) stays for its own attempt.
        PendingHubRemoval.objects.filter(pk=row.pk, requested_at=row.requested_at).delete()
        log.info("removed hub user %s (%s): server stopped, hub tokens deleted", row.username, row.reason)
        removed.append(row.username)
    return removed, failed


# --- when: after a commit, on later requests -------------------------------------------------------------
_lock = threading.Lock()
_worker: threading.Thread | None = None
_again = False
_last_check = 0.0


def _work():
    global _worker, _again
    rounds = 0
    while True:
        with _lock:
            _again = False
        stopping = False
        try:
            _, failed = process_pending()
            stopping = any(isinstance(exc, StillStopping) for _, exc in failed)
        except Exception:  # a broken database must not kill the thread silently: say so, retry later
            log.exception("processing pending hub removals failed")
        finally:
            connections.close_all()  # this thread's own connections
        if stopping and rounds < STOPPING_ROUNDS:
            # Nobody may use the portal meanwhile; the user's hub tokens live until the removal is done.
            rounds += 1
            time.sleep(RETRY_SECONDS)
            continue
        with _lock:
            if not _again:
                _worker = None
                return


def kick() -> None:
    """Process the due removals now: in a background thread (one per process), or inline when
    HUB_REMOVALS_IN_BACKGROUND is off (the test settings). Non-daemon, so `manage.py shell` waits for it."""
    global _worker, _again
    if not getattr(settings, "HUB_REMOVALS_IN_BACKGROUND", True):
        process_pending()
        return
    with _lock:
        if _worker is not None:
            _again = True  # the running pass may have read the table before this row was committed
            return
        _worker = threading.Thread(target=_work, name="hub-removals", daemon=False)
        _worker.start()


def kick_if_due() -> None:
    """Cheap enough for every request: looks at the table at most every CHECK_SECONDS per process."""
    global _last_check
    now = time.monotonic()
    if now - _last_check < CHECK_SECONDS:
        return
    _last_check = now
    if _due().exists():
        kick()


class RetryHubRemovalsMiddleware:
    """Retries removals the hub did not confirm, on the portal's requests (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        try:
            kick_if_due()
        except Exception:  # never fail a page because of the queue
            log.exception("could not look for pending hub removals")
        return response
