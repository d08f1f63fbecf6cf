"""The embedded default: SQLite, in-process cache, one gunicorn process, no Nginx.

A missing SECRET_KEY is generated once into `var/secret_key` (mode 0600) so a fresh clone just runs.
"""

import os
import secrets

from .base import *  # noqa: F403
from .base import VAR_DIR

if not SECRET_KEY:  # noqa: F405
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    SECRET_KEY = key_file.read_text().strip()
