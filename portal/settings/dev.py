"""The embedded default: SQLite, in-process cache, one gunicorn process, no Nginx.

Without SECRET_KEY in .env it is read from `var/secrets/SECRET_KEY` (mode 0600), which ./run.sh makes first
(`python -m portal.config prepare`), so a fresh clone just runs.
"""

from .base import *  # noqa: F403
from .base import _secret

SECRET_KEY = _secret("SECRET_KEY")
