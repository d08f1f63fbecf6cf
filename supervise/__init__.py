"""run.sh's process supervisor (`python -m supervise`), and the small library the tests start their portals
and hubs with. Standard library only: it runs before anything else and never imports the project. The rules
and the reasons it is ours rather than supervisord's or circus's are in supervise/supervisor.py."""

from supervise.supervisor import (
    NotReady,
    Process,
    StartError,
    Supervisor,
    alive,
    command_line,
    descendants,
    start_time,
    still_running,
)

__all__ = [
    "NotReady",
    "Process",
    "StartError",
    "Supervisor",
    "alive",
    "command_line",
    "descendants",
    "start_time",
    "still_running",
]
