"""The embedded default: SQLite, in-process cache, one gunicorn process, no Nginx.

A missing SECRET_KEY is generated once into `var/secrets/SECRET_KEY` (mode 0600) so a fresh clone just runs.
"""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env.secret("SECRET_KEY", nbytes=50)
