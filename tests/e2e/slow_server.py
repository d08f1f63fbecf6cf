"""A student's server that takes seconds to start: the real `jupyterhub-singleuser`, after a wait.

The hub of tests/e2e/test_queued_starts.py starts this script as every user's server (`--LocalHomeSpawner.cmd`,
tests/live.py `Stack(hub_args=...)`), so that the hub's answer to a start comes only after START_TIMEOUT_SECONDS
of accounts/hub.py, as on a loaded machine starting many containers.

    slow_server.py [jupyterhub-singleuser's arguments]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

WAIT_SECONDS = 20

if __name__ == "__main__":
    time.sleep(WAIT_SECONDS)
    singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
    os.execv(singleuser, [singleuser, *sys.argv[1:]])
