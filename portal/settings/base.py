"""Settings shared by every profile, built from the typed configuration `portal.config.load()` hands out (its
sections are parsed there, once; nothing here reads `.env`)."""

import sys

from django.utils.translation import gettext_lazy as _

from portal.config import load
from portal.config.env import BASE_DIR, EnvError, database_config, var_dir


def _fail(message: str):
    """Stop start-up with one line an operator can act on, not a traceback."""
    raise SystemExit(f"CFPS portal configuration error: {message}")


try:
    CONFIG = load()
    _PROD = CONFIG.prod
    if _PROD and not (CONFIG.env.given("APP_DOMAIN_NAME") or CONFIG.env.given("PUBLIC_URL")):
        # Reported with every other missing key in one line by prod.py; a stand-in lets the rest load first.
        CONFIG = CONFIG.replace(APP_DOMAIN_NAME="missing.invalid")
        MISSING_SECRETS = ["APP_DOMAIN_NAME"]
    else:
        MISSING_SECRETS = []
    WEB, LIMITS, MAIL, ACCOUNTS, AUDIT = CONFIG.web, CONFIG.limits, CONFIG.mail, CONFIG.accounts, CONFIG.audit
    TOPOLOGY, HUB, DEPLOY = CONFIG.topology, CONFIG.hub, CONFIG.deploy
    DATABASES = {"default": database_config(WEB.database_url)}
except EnvError as exc:
    _fail(str(exc))
VAR_DIR = var_dir()
DEBUG = WEB.debug

DJANGO_APPS = [
    "portal.apps.AdminConfig",  # django.contrib.admin: staff with their second factor, the staff tools in one section
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "oauth2_provider",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]
LOCAL_APPS = ["accounts", "deploy", "staff", "course", "audit"]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "accounts.oauth.RefuseQueryCredentialsMiddleware",  # no token, code or secret in a URL under /o/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.RequestContextMiddleware",  # who acts, from where: for what signals record (audit/records.py)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",  # whether the session gave a staff member's second factor
    "accounts.sessions.IdleSessionMiddleware",  # shared-PC and staff sessions end when idle
    "accounts.otp.StaffVerificationMiddleware",  # a staff session without its second factor reaches nothing
    "accounts.middleware.PasswordChangeRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.hub.RetryHubRemovalsMiddleware",  # calls to the hub it has not confirmed yet (accounts/hub.py)
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# An assignment's table of scores posts two fields per student (course/admin_views.py): a roster's 5000 students fit.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 12000
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
                "staff.context_processors.announcements",
            ],
        },
    },
]

PASSWORD_HASHERS = [
    "accounts.hashers.PBKDF2PasswordHasher",  # user passwords: Django's PBKDF2, slow on purpose, bounded at once
    "accounts.hashers.ClientSecretHasher",  # OAuth client secrets only (see its docstring)
]

# Password checks running at once per process (accounts/hashers.py); more wait without using CPU.
PASSWORD_CHECKS_AT_ONCE = WEB.password_checks_at_once

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
TIME_ZONE = WEB.time_zone

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
# Only failed guesses count (rules in accounts/throttle.py); each window starts with its first failure.
THROTTLE_ENABLED = True
# Wrong (unknown) invite codes per client address: stops enumerating codes. Correct codes are bounded only
# by each code's max_uses, so a class behind one NAT address can all sign up.
SIGNUP_CODE_FAILURE_LIMIT = LIMITS.signup_code_failures
# Failed logins per username from browsers without that user's device cookie: stops guessing one password.
LOGIN_USER_FAILURE_LIMIT = LIMITS.login_user_failures
# Failed logins per client address, across usernames (correct logins never count).
LOGIN_IP_FAILURE_LIMIT = LIMITS.login_ip_failures
# Failed logins per device cookie (a browser that logged in to that account before; OWASP device cookies).
LOGIN_DEVICE_FAILURE_LIMIT = LIMITS.login_device_failures
DEVICE_COOKIE_DAYS = LIMITS.device_cookie_days
# Accounts one browser remembers as its devices (a shared lab computer serves several students).
DEVICE_COOKIE_USERS = 8
# PROXY_SECRET (the X-Cfps-Proxy header our own proxies add, the only reason to believe X-Forwarded-For)
# is with the other generated secrets below, after _secret().

# --- Accounts ------------------------------------------------------------------------------------------
ADMIN_USERNAME = ACCOUNTS.admin_username
ADMIN_PASSWORD = ACCOUNTS.admin_password
ADMIN_EMAIL = ACCOUNTS.admin_email
INVITE_CODES = ACCOUNTS.invite_codes

# --- The staff's second factor (accounts/otp.py) and idle sessions (accounts/sessions.py) ---------------
# required (prod's only value): every staff account enrols at its first login; optional (dev): only those who did.
STAFF_OTP = ACCOUNTS.staff_otp
# What authenticator apps show above the code (the account's username is shown with it).
OTP_TOTP_ISSUER = "CFPS JupyterHub"
# The admin of devices (superusers only) never shows a secret.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
STAFF_IDLE_SECONDS = ACCOUNTS.staff_idle_minutes * 60
SHARED_PC_IDLE_SECONDS = ACCOUNTS.shared_pc_idle_minutes * 60

# --- E-mail: password reset by mail only when a mail server is configured (rules in portal/config/mail.py) ---
# False without a mail server: the "forgot password" page then says to ask staff for a set-password link.
EMAIL_ENABLED = MAIL.enabled
EMAIL_BACKEND = MAIL.backend
EMAIL_HOST, EMAIL_PORT = MAIL.host, MAIL.port
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = MAIL.host_user, MAIL.host_password
EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT = MAIL.use_tls, MAIL.use_ssl, MAIL.timeout
DEFAULT_FROM_EMAIL = MAIL.default_from_email
# Sign-up asks for an e-mail address (only used for password reset): optional, required or off.
SIGNUP_EMAIL = ACCOUNTS.signup_email

# --- Request limits where the risk is volume, not guesses (django-ratelimit; rules in accounts/ratelimits.py) ---
# Every request counts, in windows of fixed length, in the same "default" cache as the guess counts. A cache that
# does not answer lets requests through (the hub's logins must not stop with Redis): accounts/ratelimits.py.
RATELIMIT_FAIL_OPEN = True
RATELIMIT_CACHE_PREFIX = "cfps:rl:"
# The token endpoint per client (the hub is one client for every student) and per client address.
OAUTH_TOKEN_RATE_LIMIT = LIMITS.oauth_token_rate
# The userinfo endpoint per access token.
OAUTH_USERINFO_RATE_LIMIT = LIMITS.oauth_userinfo_rate
# Reset requests per e-mail address and per account (stops mail-bombing a student), and per client address.
PASSWORD_RESET_RATE_LIMIT = LIMITS.password_reset_rate
PASSWORD_RESET_IP_RATE_LIMIT = LIMITS.password_reset_ip_rate
# Posts of the set-password pages (a printed link, a reset mail) per account and per client address.
SET_PASSWORD_RATE_LIMIT = LIMITS.set_password_rate
SET_PASSWORD_IP_RATE_LIMIT = LIMITS.set_password_ip_rate
# Uploads per staff account (roster import, course material and assignments).
ADMIN_UPLOAD_RATE_LIMIT = LIMITS.admin_upload_rate
# /api/announcements/ per client address.
ANNOUNCEMENTS_RATE_LIMIT = LIMITS.announcements_rate
# The home page's state of one's own server, per account (accounts/views.py server_state).
SERVER_STATE_RATE_LIMIT = LIMITS.server_state_rate

# --- The record of who did what (audit/; superusers read it in the admin) ------------------------------------
# Entries older than this are deleted once a day by the course worker (audit/retention.py).
AUDIT_RETENTION_DAYS = AUDIT.retention_days

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Tokens, codes and secrets in a logged URL are masked (portal/config/logscrub.py).
    "filters": {"scrub_secrets": {"()": "portal.config.logscrub.ScrubSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr, "filters": ["scrub_secrets"]}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Two origins: the portal here, the hub and the students' servers on another host (portal/config/topology.py) ---
PUBLIC_URL = TOPOLOGY.public_url
# Where the "Open JupyterLab" button points: the hub's own origin, never this one.
JUPYTERHUB_URL = TOPOLOGY.hub_public_url
# The portal answers only under its own host name (a request naming the hub's host is refused with 400), and
# on 127.0.0.1, where the hub calls the token and userinfo endpoints. ALLOWED_HOSTS in .env adds aliases.
_extra_hosts = [host for host in WEB.allowed_hosts if host not in (TOPOLOGY.portal_host, "127.0.0.1")]
_hub = TOPOLOGY.hub_host
# (issue 20: nor a student's host, <name>.<the hub's host>, nor a pattern covering them)
if any(h == _hub or h.endswith("." + _hub) or (h.startswith(".") and _hub.endswith(h)) for h in _extra_hosts):
    _fail(f"ALLOWED_HOSTS must not name the hub's host {_hub} or one under it: students' pages are served there")
ALLOWED_HOSTS = [TOPOLOGY.portal_host, *(["127.0.0.1"] if TOPOLOGY.portal_host != "127.0.0.1" else []), *_extra_hosts]
# Form posts are accepted from the portal's own origin only (Django also checks Origin against the host).
CSRF_TRUSTED_ORIGINS = TOPOLOGY.portal_origins

# Cookies are host-only (no Domain attribute): the hub's host never receives them. Over https they carry the
# __Host- prefix, which browsers refuse to accept from any other host: a student's page on hub.<domain> could
# otherwise plant a cookie for the parent domain (cookie tossing) that the portal would read as its own.
_COOKIE_PREFIX = "__Host-" if TOPOLOGY.is_https else ""
SESSION_COOKIE_NAME = f"{_COOKIE_PREFIX}cfps_session"
CSRF_COOKIE_NAME = f"{_COOKIE_PREFIX}cfps_csrftoken"
LANGUAGE_COOKIE_NAME = f"{_COOKIE_PREFIX}cfps_language"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LANGUAGE_COOKIE_SECURE = TOPOLOGY.is_https
SESSION_COOKIE_HTTPONLY = True
# Lax: cross-site requests (a student's page included) carry no portal cookie, top-level links still log in.
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = LANGUAGE_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy on every portal page (django-csp): scripts and styles only from our own static
# files, so an injected inline <script> or on* attribute does not run; nothing may frame the portal; forms
# post only to the portal itself and to the hub (login, consent and logout end in a redirect to the hub's
# host, which browsers check against form-action too).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'", TOPOLOGY.hub_origin],
    }
}

# --- OAuth2 / OpenID Connect provider (django-oauth-toolkit at /o/) ------------------------------------
# The embedded default reads what .env leaves out from var/secrets/ (made by `python -m portal.config.env
# prepare`, which ./run.sh runs; never here); prod wants each one in .env and lists every missing one in a
# single line (see prod.py).
_GENERATE_SECRETS = not _PROD


def _secret(key: str) -> str:
    try:
        return CONFIG.secrets.get(key)
    except EnvError as exc:
        if _GENERATE_SECRETS:
            _fail(str(exc))  # the step that makes it has not run
        MISSING_SECRETS.append(key)
        return ""


HUB_CLIENT_ID = TOPOLOGY.hub_client_id
HUB_CLIENT_SECRET = _secret("HUB_CLIENT_SECRET")
# The portal's own token as a JupyterHub service, used to stop a deactivated student's server at once.
HUB_API_TOKEN = _secret("HUB_API_TOKEN")
# Our own proxies (JupyterHub's, Nginx) send it as `X-Cfps-Proxy`; only then is X-Forwarded-For believed
# (accounts/throttle.py client_ip).
PROXY_SECRET = _secret("PROXY_SECRET")
HUB_API_URL = TOPOLOGY.hub_api_url
# A student's portal login starts their server in the background (accounts/signals.py, accounts/hub.py).
START_SERVER_AT_LOGIN = HUB.start_server_at_login


def _oidc_private_key() -> str:
    try:
        return CONFIG.secrets.oidc_private_key_pem()
    except EnvError as exc:
        if _GENERATE_SECRETS or CONFIG.env.given("OIDC_RSA_PRIVATE_KEY_FILE"):
            _fail(str(exc))  # the step that makes it has not run, or the file named cannot be read
        MISSING_SECRETS.append("OIDC_RSA_PRIVATE_KEY_FILE")
        return ""


OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "accounts.oauth.PortalOAuth2Validator",
    # Authorization code with PKCE only, and only S256 ("plain" and missing challenges are refused).
    "PKCE_REQUIRED": True,
    # Every RFC 9700 (OAuth 2.0 Security BCP) gate on: no implicit or password grant, no "plain" PKCE, no
    # tokens in query strings, `iss` in authorization responses, tokens stored hashed; and the deploy
    # check treats a non-compliant setting as an error.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "OIDC_ENABLED": True,
    # The hub's logout ends the portal session too (OpenID Connect RP-initiated logout at /o/logout/). With a
    # valid id_token_hint of the logged-in user it logs out without asking (the hint is the proof that the
    # hub, not some other site, sent the browser); without one, or for another user, it asks first (a POST).
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    "OIDC_RP_INITIATED_LOGOUT_ACCEPT_EXPIRED_TOKENS": True,
    "OIDC_RP_INITIATED_LOGOUT_DELETE_TOKENS": True,
    "OIDC_RSA_PRIVATE_KEY": _oidc_private_key(),
    "OIDC_ISS_ENDPOINT": f"{PUBLIC_URL}/o",
    "SCOPES": {
        "openid": _("Sign you in"),
        "profile": _("Your username, name and groups"),
        "email": _("Your e-mail address"),
    },
    "DEFAULT_SCOPES": ["openid"],
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": HUB.access_token_seconds,
    "ID_TOKEN_EXPIRE_SECONDS": HUB.access_token_seconds,
    "REFRESH_TOKEN_EXPIRE_SECONDS": HUB.refresh_token_seconds,
    # Each refresh hands out a new refresh token; replaying an old one revokes the whole family.
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "CLIENT_SECRET_HASHER": "cfps_client_sha256",
    # http only for the embedded default on 127.0.0.1; prod allows https alone.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
}

# --- Production deploy files (python manage.py gen_nginx, gen_systemd, gen_firewall) -------------------
# The public host name; Nginx's server_name and the certificate folder come from it.
APP_DOMAIN_NAME = DEPLOY.app_domain_name
# The machine account the systemd units run the portal and the hub as (never root).
SERVICE_USER = DEPLOY.service_user
# Firewall: the host interfaces user containers come from (iptables names; `+` is a wildcard: br-+ is every
# user-defined Docker network) and the host address they reach the hub at.
DOCKER_BRIDGE_INTERFACES = DEPLOY.bridge_interfaces
# HSTS lifetime; Nginx sends the header for the hub too, and prod tells Django the same value.
HSTS_SECONDS = DEPLOY.hsts_seconds
HSTS_INCLUDE_SUBDOMAINS = DEPLOY.hsts_include_subdomains
# The MySQL port containers may reach: the one notebooks use for the dataset (never typed twice).
FIREWALL_MYSQL_PORT = DEPLOY.firewall_mysql_port

# --- Users' notebook containers, the swarm, the dataset (the commands read them; the hub reads the same) ------
try:
    CONTAINERS = CONFIG.containers
    SWARM = CONFIG.swarm
    # Running a course: hand-outs, hand-ins and their limits (portal/config/course.py).
    COURSE = CONFIG.course
    # DATASET_DATABASE_URL (the notebooks' read-only account), DATASET_ADMIN_URL, DATASET_USER_HOST.
    DATASET = CONFIG.dataset
except EnvError as exc:
    _fail(str(exc))
# The embedded default: the synthetic sample in the local data folder, opened read-only by notebooks.
from portal.config import dataset as _dataset  # noqa: E402

DATASET_SAMPLE_PATH = _dataset.sample_path(_dataset.local_data_dir())
