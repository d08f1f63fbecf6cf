"""Error pages rendered with our base template, so a lost student still sees the navigation.

A database that is down (or a full disk under it) is not a bug in the portal: the request gets a translated
503 page with Retry-After instead of the 500 page, its transaction has been rolled back (nothing is
half-written), and the next request tries the database again (CONN_HEALTH_CHECKS), so the portal recovers by
itself when the database is back.
"""

import errno
import shutil
import sys
from pathlib import Path

from django.shortcuts import render

RETRY_AFTER_SECONDS = 60
# MySQL/MariaDB error codes for a full disk or table (ER_DISK_FULL, ER_RECORD_FILE_FULL, ER_ERROR_ON_WRITE).
_MYSQL_FULL = {1021, 1114, 1026}
_NEARLY_FULL_BYTES = 1024**2


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def _causes(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _sqlite_folder_full() -> bool:
    """SQLite in WAL mode reports a full disk as a plain "disk I/O error" (no room for its -shm file)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith("sqlite3"):
        return False
    try:
        return shutil.disk_usage(Path(database["NAME"]).parent).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full(exc) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        if "disk is full" in str(cause) or (cause.args and cause.args[0] in _MYSQL_FULL):
            return True
        if "disk I/O error" in str(cause):
            return _sqlite_folder_full()
    return False


def database_unavailable(exc) -> bool:
    from django.db import InterfaceError, OperationalError

    return any(isinstance(cause, (OperationalError, InterfaceError)) for cause in _causes(exc)) or disk_full(exc)


def server_error(request):
    # No context processors that touch the database: the error may be the database.
    from django.http import HttpResponse, HttpResponseServerError
    from django.template import loader

    exc = sys.exc_info()[1]  # Django calls this handler while it handles the view's exception
    if database_unavailable(exc):
        page = loader.get_template("503.html").render({"disk_full": disk_full(exc), "path": request.path})
        response = HttpResponse(page, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponseServerError(loader.get_template("500.html").render())
