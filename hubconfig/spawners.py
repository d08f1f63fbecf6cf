"""The embedded spawner: each user's JupyterLab as a local process, for machines without Docker.

Homes live in `var/users/<name>/` and show the same folders a container would:
- `data/`        the shared, read-only sample data (a link to `var/shared/data`)
- `team-shared/` the folder every user can write (a link to `var/shared/team-shared`)
- `notebooks/`   the user's own copy of the example notebooks, made at the first start (never overwritten)

The data folder follows userspace/datafolder.py: the hub fills it (sync_data_folder) at its first spawn, and
every server gets CFPS_DATA_DIR (~/data) and PYTHONPATH (~/data/lib), as in a container.

There is NO isolation: every user's code runs as the hub's own system user and can read every home.
That is fine for one person trying the system, never for a class; `prod` refuses this spawner.
"""

import os
import shutil
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

from userspace.datafolder import sync_data_folder

WARNING = (
    "SPAWNER=local: users' JupyterLab servers run as local processes WITHOUT isolation "
    "(anyone can read everyone's files). Use it to try the system, never for a class."
)


class LocalHomeSpawner(SimpleLocalProcessSpawner):
    shared_root = Unicode(config=True, help="Folder holding data/ (read-only) and team-shared/.")

    _data_synced = False  # once per hub process, at the first spawn

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
        examples = shared / "data" / "notebooks"
        if examples.is_dir() and not (home / "notebooks").exists() and not (home / "notebooks").is_symlink():
            shutil.copytree(examples, home / ".notebooks.partial", dirs_exist_ok=True)
            (home / ".notebooks.partial").rename(home / "notebooks")
        return home

    def get_env(self):
        environment = super().get_env()
        data = Path(self.home_dir) / "data"
        environment["CFPS_DATA_DIR"] = str(data)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(data / "lib"), environment.get("PYTHONPATH")]))
        return environment

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0:
            # Same user as the hub (see the module docstring); Jupyter refuses root without this flag.
            args.append("--allow-root")
        # ~/data and ~/team-shared are symlinks here (mounts in a container). Jupyter's default /files/ handler
        # (tornado's StaticFileHandler) refuses files reached through a symlink out of the home (403), which
        # would break downloads and the chart libraries notebooks load from ~/data/lib/cfps/static/ (see
        # singleuser/notebook/lib/cfps/charts.py); this handler reads through the contents manager, as the file
        # browser does, and follows them.
        args.append("--FileContentsManager.files_handler_class=jupyter_server.files.handlers.FilesHandler")
        return args

    async def start(self):
        if not LocalHomeSpawner._data_synced:
            sync_data_folder(Path(self.shared_root) / "data")
            LocalHomeSpawner._data_synced = True
        self.ensure_home()
        return await super().start()
