"""The embedded spawner: each user's JupyterLab as a local process, for machines without Docker.

Homes live in `var/users/<name>/` and show the same folders a container would:
- `data/`        the shared, read-only sample data (a link to `var/shared/data`)
- `team-shared/` the folder every user can write (a link to `var/shared/team-shared`)

There is NO isolation: every user's code runs as the hub's own system user and can read every home.
That is fine for one person trying the system, never for a class; `prod` refuses this spawner.
"""

import os
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

WARNING = (
    "SPAWNER=local: users' JupyterLab servers run as local processes WITHOUT isolation "
    "(anyone can read everyone's files). Use it to try the system, never for a class."
)


class LocalHomeSpawner(SimpleLocalProcessSpawner):
    shared_root = Unicode(config=True, help="Folder holding data/ (read-only) and team-shared/.")

    def ensure_home(self) -> Path:
        home = Path(self.home_dir)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        shared = Path(self.shared_root)
        for name in ("data", "team-shared"):
            target = shared / name
            target.mkdir(parents=True, exist_ok=True)
            link = home / name
            if not link.exists() and not link.is_symlink():
                os.symlink(target, link)
        return home

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # Same user as the hub (see the module docstring); Jupyter refuses root without this flag.
            args.append("--allow-root")
        return args

    async def start(self):
        self.ensure_home()
        return await super().start()
