"""Production: no defaults for secrets, hosts or the database; refuses to start without them.

Everything comes from `.env`. Missing or placeholder values stop the process with one line naming them.
"""

from .base import *  # noqa: F403
from .base import MISSING_SECRETS, _fail, env

_missing = [key for key in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") if not env.get(key)]
if not (env.get("ALLOWED_HOSTS") or env.get("APP_DOMAIN_NAME")):
    _missing.append("ALLOWED_HOSTS (or APP_DOMAIN_NAME)")
_missing += MISSING_SECRETS
if _missing:
    _fail(f"APP_PROFILE=prod needs {', '.join(_missing)} in .env")

SECRET_KEY = env.get("SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or "change" in SECRET_KEY.lower():
    _fail(
        "SECRET_KEY looks like a placeholder; generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

DEBUG = False
DOMAIN = env.get("APP_DOMAIN_NAME")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS") or [DOMAIN]
CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS if host and not host.startswith(".")]

# Several gunicorn workers share one Redis, so rate-limit counts stay exact across processes.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env.get("REDIS_URL")}}
SILENCED_SYSTEM_CHECKS = [
    # Django's own RedisCache increments with Redis INCRBY, atomic across processes, which is all
    # django-ratelimit needs; the warning only says it is not on that project's tested list.
    "django_ratelimit.W001",
    # HSTS is per host by default: a campus hub usually lives on a subdomain of the university's domain,
    # and this server cannot promise that every sibling host serves HTTPS (set SECURE_HSTS_INCLUDE_SUBDOMAINS
    # if it can). Preloading is a commitment for the whole domain, not one server's decision.
    "security.W005",
    "security.W021",
]

OAUTH2_PROVIDER = {**OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https"]}

# TLS ends at Nginx, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
