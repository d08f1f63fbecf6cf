"""The portal's narrow client for the JupyterHub REST API (as the hub service `portal`), and the queue of calls
the portal must make to the hub: remove a hub user, make or update one, start a server.

Rules:
- Deactivating, deleting or renaming an account, and changing its password, remove the person's hub user
  (`DELETE /users/<name>`, scope `delete:users`, after `DELETE /users/<name>/server`, scope `servers`). That
  stops their server and deletes every hub token they hold: the API tokens they made themselves, the ones of
  their server and of its browser sessions, and the hub cookie's identity. Their files stay (the Docker
  volume or `var/users/<name>/`).
- Every active account has its hub user before its first login (issue 23): making an account (sign-up, roster
  import, the admin, a command) or changing its classes, staff rights or active flag makes or updates the hub
  user with the name, groups and staff role a login would give it (`hubconfig/users.py`, the hub's side, which
  applies them as the login does), so the first hub login only logs in. A password change removes the hub user
  (as above) and makes a fresh one, without the old tokens.
- A student's portal login asks the hub to start their server (`queue_start`, START_SERVER_AT_LOGIN), always in
  the background: the login never waits on the hub. A start not done within START_SECONDS (the hub was down)
  is dropped: nobody wants a server they asked for an hour ago.
- Each call is written to `PendingHubCall` in the same transaction as the change (accounts.signals) and
  carried out after the commit, in a background thread so that staff changing a class never wait for 30
  calls. For each user the removal goes first, then the hub user, then the start, one after another; while an
  earlier one is not confirmed, the later ones wait. Different users' calls run at once, WARMUP_CONCURRENCY of
  them per process (`process_pending`'s threads, which end with each pass): a start waits up to
  START_TIMEOUT_SECONDS for the hub, and a class logging in within a minute must not queue for minutes.
- One process carries out a call: it claims the row with one conditional UPDATE (`_claim`, atomic on SQLite and
  MariaDB), and the other processes (gunicorn workers, the retry command) leave that user's calls alone while
  the claim holds (CLAIM_SECONDS, longer than any call; a process that died lets them go after it). A removal
  wins: making a hub user or starting a server looks at the account
  when it is carried out, and does neither for an account that is gone or inactive by then (and asks for the
  removal again if the account went away during the call). Whatever the hub does not confirm (it is down, or
  a server is still stopping) stays in the table and is retried, at most every RETRY_SECONDS (while only a slow
  server stop holds it up, the thread itself tries again for a minute):
  - on the next request to the portal (`RetryHubRemovalsMiddleware`). A hub back from an outage asks the
    portal about every user it serves at least every HUB_AUTH_REFRESH_SECONDS (its auth refresh, on cookie
    and token requests alike), so the first use of a hub token soon triggers the retry;
  - by `manage.py retry_hub_removals` (run.sh runs it once the hub answers; cron or an operator may too).
- Every step may be repeated: the hub answering 404 (no such user, no server) counts as done for a removal,
  a hub user made twice is updated, a start of a server that runs or starts is done.
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

# A call the hub did not confirm is tried again after this long (and never more often).
RETRY_SECONDS = 10
# While only a slow server stop holds a removal up, the background thread itself tries again this often.
STOPPING_ROUNDS = 6
# How often one portal process looks for due removals while serving requests.
CHECK_SECONDS = 5
# The hub waits up to its slow_stop_timeout (10 s) for a server to stop before it answers.
TIMEOUT_SECONDS = 20
# A start at login that the hub has not taken within this long is dropped (module docstring).
START_SECONDS = 300
# The home page's state of the server: a hub that does not answer quickly means "unknown", not a slow page.
STATE_TIMEOUT_SECONDS = 2
# How long the queue waits for the hub's answer to a start (start_server).
START_TIMEOUT_SECONDS = 3
# A claimed call (`_claim`) is another process's for this long: more than the longest call (a removal's two
# requests, or a start that makes the hub user); a process that died while carrying it out lets it go after that.
CLAIM_SECONDS = 3 * TIMEOUT_SECONDS


class HubError(Exception):
    """The hub could not be asked, or did not do it; the message is one line for the log and the admin."""


class StillStopping(HubError):
    """The hub is stopping the server (it answers before a slow stop ends); worth trying again soon."""


def _request(method: str, path: str, timeout: float = TIMEOUT_SECONDS, body: dict | None = None):
    headers = {"Authorization": f"token {settings.HUB_API_TOKEN}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(settings.HUB_API_URL + path, method=method, headers=headers, data=data)
    with _OPENER.open(request, timeout=timeout) as response:
        body = response.read()
        return response.status, json.loads(body) if body else None


class _Unanswered(HubError):
    """The request went out but no answer came in time."""


def _call(method: str, path: str, done: tuple[int, ...], timeout: float = TIMEOUT_SECONDS) -> int:
    """One API call; returns the status when it is in `done` (404 always counts), else raises HubError."""
    try:
        status, _ = _request(method, path, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 or exc.code in done:
            return exc.code
        detail = exc.read(300).decode("utf-8", "replace").strip()
        error = StillStopping if "stopping" in detail else HubError  # DELETE /users during a slow stop: 400
        raise error(f"{method} {path}: HTTP {exc.code} {detail}"[:300]) from None
    except TimeoutError:  # sent, not answered (a connection not made in time is a URLError)
        raise _Unanswered(f"{method} {path}: no answer within {timeout:.0f} s") from None
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


# --- the hub's side of a user: what a login would give it --------------------------------------------------
def hub_groups(user) -> list[str]:
    """The user's classes and teams as the hub knows them: the `groups` claim (accounts/oauth.py), never a role."""
    return sorted(user.groups.filter(staff_role__isnull=True).values_list("name", flat=True))


def hub_profile(user) -> dict:
    """What the hub is told about a user, the same as their login's claims say: groups and the staff mark."""
    from accounts import roles

    return {"groups": hub_groups(user), "staff": roles.is_hub_admin(user)}


def api(method: str, path: str, body=None, timeout: float = TIMEOUT_SECONDS):
    """One call of the hub's API as the portal (the warm-ups', course/warmup.py); returns (status, JSON body or
    None), raises HubError when the hub cannot be asked. HTTP errors come back as their status with the hub's
    message ({"message": ...})."""
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


def sync_hub_user(user) -> bool:
    """Make or update the user's hub user (hubconfig/users.py); True if the hub made it. Raises HubError."""
    path = f"/cfps/users/{urllib.parse.quote(user.username)}"
    try:
        status, body = _request("POST", path, body=hub_profile(user))
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise HubError(f"POST {path}: HTTP {exc.code} {detail}"[:300]) from None
    except (urllib.error.URLError, OSError) as exc:
        raise HubError(f"hub unreachable: {getattr(exc, 'reason', exc)}"[:300]) from None
    return bool(body and body.get("created"))


def start_server(username: str) -> int:
    """Ask the hub to start the user's default server; 201/202 started or starting, 400 already running or
    pending, 404 no such hub user. Raises HubError otherwise.

    The hub answers a start only when the server is up or after its slow_spawn_timeout (10 s); the queue must not
    wait that long per student, so a request that was sent and not answered within START_TIMEOUT_SECONDS counts
    as asked (202): the hub goes on with a spawn whose caller went away."""
    try:
        return _call(
            "POST", f"/users/{urllib.parse.quote(username)}/server", done=(201, 202, 400),
            timeout=START_TIMEOUT_SECONDS,
        )  # fmt: skip
    except _Unanswered:
        return 202


def server_state(username: str) -> str:
    """ "ready", "starting", "stopping" or "none" for the user's default server; raises HubError."""
    try:
        _, model = _request("GET", f"/users/{urllib.parse.quote(username)}/server", timeout=STATE_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # no hub user yet, or no server
            return "none"
        raise HubError(f"GET server: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise HubError(f"hub unreachable: {getattr(exc, 'reason', exc)}"[:300]) from None
    model = model or {}
    if model.get("ready"):
        return "ready"
    pending = model.get("pending")
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    return "none"


# --- the queue -------------------------------------------------------------------------------------------
# The order of a user's calls: a removal before the hub user is made again, the hub user before its server.
_ORDER = {"remove": 0, "sync": 1, "start": 2}


def _queue(username: str, kind: str, reason: str) -> None:
    from accounts.models import PendingHubCall

    PendingHubCall.objects.update_or_create(
        username=username,
        kind=kind,
        defaults={"reason": reason, "requested_at": timezone.now(), "attempts": 0, "last_attempt_at": None,
                  "last_error": ""},
    )  # fmt: skip


def queue_removal(username: str, reason: str) -> None:
    """Record that the hub user must go, in the caller's transaction; it is carried out after the commit. A start
    still pending for the name is dropped: a removal wins."""
    from accounts.models import PendingHubCall

    _queue(username, PendingHubCall.Kind.REMOVE, reason)
    PendingHubCall.objects.filter(username=username, kind=PendingHubCall.Kind.START).delete()
    transaction.on_commit(kick)


def queue_sync(username: str, reason: str) -> None:
    """Record that the hub user must exist with the account's groups and staff role (after the commit)."""
    from accounts.models import PendingHubCall

    _queue(username, PendingHubCall.Kind.SYNC, reason)
    transaction.on_commit(kick)


def queue_start(username: str, reason: str = "login") -> None:
    """Record that the user's server should start; carried out after the commit, always in the background."""
    from accounts.models import PendingHubCall

    _queue(username, PendingHubCall.Kind.START, reason)
    transaction.on_commit(lambda: kick(background=True))


def _due(now=None, force: bool = False):
    """The calls to carry out now: not tried within RETRY_SECONDS (any time with `force`), and none of a user
    one of whose calls a portal process has claimed and is still carrying out (`_claim`)."""
    from accounts.models import PendingHubCall

    now = now or timezone.now()
    claimed = PendingHubCall.objects.filter(last_error="", last_attempt_at__gt=now - timedelta(seconds=CLAIM_SECONDS))
    rows = PendingHubCall.objects.exclude(username__in=claimed.values("username"))
    if not force:
        cutoff = now - timedelta(seconds=RETRY_SECONDS)
        rows = rows.filter(Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=cutoff))
    return rows


def _claim(row) -> bool:
    """Take the row for this attempt, or False when another process (a gunicorn worker, a command) took it first.

    One conditional UPDATE on the row as it was read, atomic on SQLite and MariaDB alike: of two processes that
    found the same due row only one changes it. It counts the attempt and marks the row as under way (attempted,
    no error yet), which `_due` leaves alone for CLAIM_SECONDS; a failure then writes its error."""
    from accounts.models import PendingHubCall

    return bool(
        PendingHubCall.objects.filter(
            pk=row.pk, requested_at=row.requested_at, attempts=row.attempts, last_attempt_at=row.last_attempt_at
        ).update(attempts=row.attempts + 1, last_attempt_at=timezone.now(), last_error="")
    )


def _active_account(username: str):
    """The active account that holds this name now, or None."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username=username, is_active=True).first()


def _carry_out(row) -> str:
    """Make one call; returns what was done (for the log) or raises HubError."""
    from accounts.models import PendingHubCall

    if row.kind == PendingHubCall.Kind.REMOVE:
        delete_hub_user(row.username)
        return "removed: server stopped, hub tokens deleted"
    if row.kind == PendingHubCall.Kind.START and timezone.now() - row.requested_at > timedelta(seconds=START_SECONDS):
        return "start dropped: asked too long ago"
    user = _active_account(row.username)
    if user is None:
        return "nothing done: the account is gone or inactive"
    if row.kind == PendingHubCall.Kind.SYNC:
        done = "made" if sync_hub_user(user) else "updated"
    elif start_server(row.username) == 404:  # the hub user was never made (the hub was down at the time)
        sync_hub_user(user)
        start_server(row.username)
        done = "made, server started"
    else:
        done = "server started"
    # Deactivated or deleted while the call was on its way: the removal may have run before it; ask again.
    if _active_account(row.username) is None:
        queue_removal(row.username, reason="inactive after a call")
        return done + ", then removed again (the account went away meanwhile)"
    return done


def _carry_out_user(rows) -> tuple[list[str], list[tuple[str, HubError]]]:
    """One user's due calls, in their order, one after another; stops at the first that is not done."""
    from accounts.models import PendingHubCall

    done, failed = [], []
    for row in rows:
        earlier = [kind for kind, order in _ORDER.items() if order < _ORDER[row.kind]]
        if PendingHubCall.objects.filter(username=row.username, kind__in=earlier).exists():
            break  # an earlier call goes first: queued meanwhile, not due yet, or another process's
        if not _claim(row):
            break  # another process carries this user's calls out now
        try:
            what = _carry_out(row)
        except HubError as exc:
            PendingHubCall.objects.filter(pk=row.pk, requested_at=row.requested_at).update(last_error=str(exc))
            log.warning("hub call %s for %s not done yet (%s): %s", row.kind, row.username, row.reason, exc)
            failed.append((row.username, exc))
            break
        except Exception as exc:  # a bug: the row is no longer under way (`_due`), and the pass says so
            PendingHubCall.objects.filter(pk=row.pk, requested_at=row.requested_at).update(
                last_error=f"{type(exc).__name__}: {exc}"[:300]
            )
            raise
        # A request made again meanwhile (requested_at changed) stays for its own attempt.
        PendingHubCall.objects.filter(pk=row.pk, requested_at=row.requested_at).delete()
        log.info("hub user %s (%s, %s): %s", row.username, row.kind, row.reason, what)
        done.append(row.username)
    return done, failed


def _carry_out_in_threads(groups: list[list], workers: int) -> list:
    """Each group of rows (one user's) through `_carry_out_user`, `workers` groups at once, in plain threads that
    end with the pass. Not a concurrent.futures pool: it refuses new work once the interpreter has begun to shut
    down, which is when a command that queued calls and ended at once is still carrying them out. A bug in one
    group is raised here once every thread has ended."""
    waiting = list(reversed(groups))
    outcomes, errors = [], []

    def run():
        try:
            while True:
                try:
                    rows = waiting.pop()  # atomic under the GIL
                except IndexError:
                    return
                try:
                    outcomes.append(_carry_out_user(rows))
                except Exception as exc:  # noqa: BLE001 - raised again below, in the pass's own thread
                    errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=run, name=f"hub-call-{n}") for n in range(min(workers, len(groups)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return outcomes


def process_pending(force: bool = False, workers: int = 1) -> tuple[list[str], list[tuple[str, HubError]]]:
    """Carry out the due calls; returns (names done, [(name, error)] still pending). Each user's calls run one
    after another in their order (removal, hub user, start), a later one waiting while an earlier one fails; with
    `workers` > 1, that many users' calls run at once, in threads that end with the pass."""
    by_user: dict[str, list] = {}  # users in the order of their first request
    for row in sorted(_due(force=force), key=lambda row: row.requested_at):
        by_user.setdefault(row.username, []).append(row)
    groups = [sorted(rows, key=lambda row: _ORDER[row.kind]) for rows in by_user.values()]
    if workers > 1 and len(groups) > 1:
        outcomes = _carry_out_in_threads(groups, workers)
    else:
        outcomes = [_carry_out_user(rows) for rows in groups]
    done = [name for names, _ in outcomes for name in names]
    failed = [failure for _, failures in outcomes for failure in failures]
    return done, failed


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
            _, failed = process_pending(workers=settings.COURSE.warmup_concurrency)
            stopping = any(isinstance(exc, StillStopping) for _, exc in failed)
        except Exception:  # a broken database must not kill the thread silently: say so, retry later
            log.exception("processing pending hub calls failed")
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


def kick(background: bool = False) -> None:
    """Process the due calls now: in a background thread (one per process), or inline when
    HUB_REMOVALS_IN_BACKGROUND is off (the test settings) unless `background` (a login's start: the login never
    waits on the hub). Non-daemon, so `manage.py shell` waits for it."""
    global _worker, _again
    if not background and not getattr(settings, "HUB_REMOVALS_IN_BACKGROUND", True):
        process_pending()
        return
    with _lock:
        if _worker is not None:
            _again = True  # the running pass may have read the table before this row was committed
            return
        _worker = threading.Thread(target=_work, name="hub-calls", daemon=False)
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
    """Retries calls the hub did not confirm, on the portal's requests (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        try:
            kick_if_due()
        except Exception:  # never fail a page because of the queue
            log.exception("could not look for pending hub calls")
        return response
