"""Settings shared by every profile. Values come from `.env` through `portal.envfile.Env` only."""

import re
import sys

from portal.envfile import BASE_DIR, Env, EnvError, database_config

env = Env()
VAR_DIR = BASE_DIR / "var"


def _fail(message: str):
    """Stop start-up with one line an operator can act on, not a traceback."""
    raise SystemExit(f"CFPS portal configuration error: {message}")


def _rate(key: str, default: str) -> str:
    """django-ratelimit rates look like `5/m`, `100/h` or `20/10m`; check them at start-up, not per request."""
    value = env.get(key, default).replace(" ", "")
    if not re.fullmatch(r"[1-9][0-9]*/[1-9]?[0-9]*[smhd]", value):
        _fail(f"{key} must look like 10/m, 100/h or 20/10m, not {value!r}")
    return value


try:
    DATABASES = {"default": database_config(env.get("DATABASE_URL"))}
    DEBUG = env.bool("DEBUG", False)
    PORT = env.int("PORT", 8000)
except EnvError as exc:
    _fail(str(exc))

SECRET_KEY = env.get("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", "127.0.0.1,localhost")

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = ["django_ratelimit"]
LOCAL_APPS = ["accounts"]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "accounts.validators.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Simplified Chinese first; English on request (Accept-Language or the switcher on every page).
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env.get("TIME_ZONE", "Asia/Shanghai")

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, pre-compressed names so whitenoise can serve them with a year-long cache header.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Throttling -------------------------------------------------------------------------------------
# Counts live in the "default" cache. The embedded default runs ONE gunicorn process with threads, so the
# in-process LocMemCache sees every request and the counts are exact. With several processes each would
# count alone (N processes => N x the limit), which is why `prod` uses Redis, shared by all of them.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cfps"}}
RATELIMIT_ENABLE = True
# Sign-ups per client IP. A whole classroom often shares one NAT address, hence the generous default.
SIGNUP_RATE_LIMIT = _rate("SIGNUP_RATE_LIMIT", "60/h")
# Login attempts per username: this is what stops password guessing against one account.
LOGIN_RATE_LIMIT = _rate("LOGIN_RATE_LIMIT", "10/m")
# Login attempts per client IP, across usernames (again generous because of campus NAT).
LOGIN_IP_RATE_LIMIT = _rate("LOGIN_IP_RATE_LIMIT", "120/m")
# X-Real-IP is believed only from these peers (the local reverse proxy); anyone else could forge it.
TRUSTED_PROXIES = set(env.list("TRUSTED_PROXIES", "127.0.0.1,::1"))
# LocMemCache is not shared between processes; see the comment above for why that is right here.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Accounts ------------------------------------------------------------------------------------------
ADMIN_USERNAME = env.get("ADMIN_USERNAME", "cfps-admin")
ADMIN_PASSWORD = env.get("ADMIN_PASSWORD")
ADMIN_EMAIL = env.get("ADMIN_EMAIL")
INVITE_CODES = env.list("INVITE_CODES", sep=";")
# Where the "open JupyterLab" button points; the hub is served under this path on the same origin.
JUPYTERHUB_URL = env.get("JUPYTERHUB_URL", "/jupyter/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SESSION_COOKIE_NAME = "cfps_session"
CSRF_COOKIE_NAME = "cfps_csrftoken"
LANGUAGE_COOKIE_NAME = "cfps_language"
# The session cookie must never be readable from notebooks served on the same origin.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
