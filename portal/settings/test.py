"""Test profile: the dev defaults with a fast hasher and a test-only secret.

The database is whatever `DATABASE_URL` says (SQLite by default, MariaDB when ./test.sh sets it), always a
real one. Rate limiting stays on; tests that need a clean slate clear the cache.
"""

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS

SECRET_KEY = "test-only-secret-key-never-used-outside-the-test-suite-0123456789"
DEBUG = False
# Fast hashing keeps the suite quick; the login-cost test swaps in the real hasher where it counts.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "accounts.hashers.ClientSecretHasher"]
# Tests do not run collectstatic: serve from the source folders, unhashed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Django's test client names "testserver"; the hub's host (localhost) stays refused, as in every profile.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
# Hub-user removals run inline, so a test sees their outcome without waiting for a thread (accounts/hub.py).
HUB_REMOVALS_IN_BACKGROUND = False
