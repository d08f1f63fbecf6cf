"""A process that queues hub calls and ends at once (`manage.py shell -c`, a command) still tries them.

Its calls run in the queue's background thread, which the interpreter waits for. With more than one user's
calls due, that thread ran them through a concurrent.futures pool, which refuses new work once the interpreter
has begun to shut down: the pass failed with "cannot schedule new futures after interpreter shutdown" and no
call was tried until the portal's next request (seen as a flaky e2e test: an operator's change reached the hub
only later). Here the hub is unreachable, so each tried call keeps its row with the error.
"""

import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from accounts.models import PendingHubCall
from tests.live import REPO, free_port

CHILD = """
import sys
import django
django.setup()
from django.conf import settings
settings.HUB_REMOVALS_IN_BACKGROUND = True  # as in production: the calls run in the background thread
settings.HUB_API_URL = sys.argv[1]
from accounts import hub
hub.kick()
# and the process ends here, at once
"""


def database_url() -> str:
    """The URL of this test's database, for a child process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)  # the child process reads what this test committed
def test_a_process_ending_at_once_still_tries_every_due_call(settings, monkeypatch):
    down = f"http://127.0.0.1:{free_port()}/jupyter/hub/api"
    settings.HUB_API_URL = down
    for name in ("exit-a", "exit-b", "exit-c"):
        get_user_model().objects.create_user(username=name, password="Cfps-analysis-2026")
    # Tried once here already (the test settings run calls inline); due again now, as if never tried.
    PendingHubCall.objects.update(attempts=0, last_attempt_at=None, last_error="")

    monkeypatch.setenv("DATABASE_URL", database_url())
    child = subprocess.run(
        [sys.executable, "-c", CHILD, down], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    assert "cannot schedule new futures" not in child.stderr, child.stderr
    rows = {row.username: (row.attempts, "unreachable" in row.last_error) for row in PendingHubCall.objects.all()}
    assert rows == {name: (1, True) for name in ("exit-a", "exit-b", "exit-c")}, child.stderr
