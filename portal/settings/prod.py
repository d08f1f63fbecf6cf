"""Production: no defaults for secrets, hosts or the database; refuses to start without them.

Everything comes from `.env`. Missing or placeholder values stop the process with one line naming them.

Rules (see docs/operator/deploy.md):
- TLS ends at Nginx (`python manage.py gen_nginx --tls`), which redirects http to https and sets
  X-Forwarded-Proto; JupyterHub's proxy then appends its own value, and Django reads the left-most one.
- Django itself never redirects to https: the hub calls /o/token/ and /o/userinfo/ on plain http over
  loopback (nothing else can reach 127.0.0.1:PORTAL_PORT), and a redirect there would break every login.
- `python manage.py check --deploy` is clean; each silenced check says why below.
"""

from portal.config import placeholders

from .base import *  # noqa: F403
from .base import CONFIG, HSTS_INCLUDE_SUBDOMAINS, HSTS_SECONDS, MISSING_SECRETS, OAUTH2_PROVIDER, WEB, _fail

_missing = [key for key in ("DATABASE_URL", "REDIS_URL") if not CONFIG.env.given(key)]
# The portal's own secrets (the key table's needed_by), APP_DOMAIN_NAME among them when missing.
_missing += [key for key in [*CONFIG.secrets.missing("portal"), *MISSING_SECRETS] if key not in _missing]
if _missing:
    _fail(f"APP_PROFILE=prod needs {', '.join(_missing)} in .env")

# The hub checks its own ones the same way (hubconfig/config.py).
_placeholders = CONFIG.secrets.placeholders("portal")
if _placeholders:
    _fail(placeholders.message(_placeholders))

SECRET_KEY = CONFIG.secrets.get("SECRET_KEY")
DEBUG = False
# ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and the __Host- cookie names follow the topology (base.py): the
# portal's own https origin only.

# Several gunicorn workers share one Redis, so rate-limit counts stay exact across processes and restarts.
# Short socket timeouts: a Redis that hangs must refuse guesses within seconds (accounts/throttle.py), not
# hold a worker thread until gunicorn kills it.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": WEB.redis_url,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
SILENCED_SYSTEM_CHECKS = [
    # HSTS is per host by default: a campus hub usually lives on a subdomain of the university's domain,
    # and this server cannot promise that every sibling host serves HTTPS (set SECURE_HSTS_INCLUDE_SUBDOMAINS
    # if it can). Preloading is a commitment for the whole domain, not one server's decision.
    "security.W005",
    "security.W021",
    # SECURE_SSL_REDIRECT is off on purpose: Nginx redirects every http request from outside to https, and
    # the only plain-http callers left are on loopback (the hub's token and userinfo calls, run.sh's and
    # systemd's health checks), which a redirect would break. See the module docstring.
    "security.W008",
]

OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https"]}

# TLS ends at Nginx, which sets X-Forwarded-Proto (overwriting whatever the client sent).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LANGUAGE_COOKIE_SECURE = True
# Nginx sends the same header for every response (hub included); Django's copy matters only to `check --deploy`.
SECURE_HSTS_SECONDS = HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = HSTS_INCLUDE_SUBDOMAINS
SECURE_HSTS_PRELOAD = False
