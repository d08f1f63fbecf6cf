"""Every key `.env` may hold, declared once: name, type, default per profile, secret or not, one line of doc.

django-oauth-toolkit's `DEFAULTS` is the model: the rest of the code asks `Env` for a key by name and gets
this table's default when `.env` leaves it empty, so a default is never typed twice. `.env.example` and the
docs' configuration reference (docs/_ext/configref.py) are generated from here (`python -m portal.config
example` writes the former), and a test fails when the committed `.env.example` differs from the table's.

Rules:
- A key not in this table is a programming error when code asks for it (`KeyError`), and an operator's error
  when `.env` holds it: start-up stops with one line naming the nearest known key (`unknown_keys`).
- `default` is what an empty value means; a dict gives one per profile ("dev", "prod"). An empty default
  whose doc says "Empty: ..." is computed from other keys by the section that reads it (e.g. HUB_DOMAIN_NAME
  is hub.APP_DOMAIN_NAME); the doc says how.
- `secret` keys are never printed, logged or sent to a student. `generated`: outside prod, an empty value is
  read from var/secrets/<NAME>, made once by `python -m portal.config prepare` (env.GENERATED_SECRETS).
  `needed_by`: which process refuses to start in prod without it (the portal, the hub, or both).
- `example`: the value written into `.env.example` when it differs from the default (e.g. an empty
  ADMIN_PASSWORD to say "generated").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

# The sections, in the order .env.example and the reference show them.
SECTIONS = {
    "profile": "Profile",
    "web": "The two origins: the portal and the hub",
    "database": "Database and cache",
    "limits": "Limits on guesses (failures/period: s, m, h or d; e.g. 10/m, 100/h, 20/10m)",
    "requests": "Limits on requests, where the risk is volume (every request counts; requests/period, e.g. 600/m)",
    "accounts": "Accounts",
    "audit": "The record of who did what (admin: superusers only)",
    "mail": "E-mail (password reset by mail; without it the 'forgot password' page says to ask staff)",
    "hub": "JupyterHub, its proxy and the users' servers",
    "secrets": "Secrets (empty: generated once into var/secrets/ in dev; required in prod)",
    "gunicorn": "The portal's processes (gunicorn)",
    "deploy": "Production deploy files: gen_nginx, gen_systemd, gen_firewall",
    "containers": "Users' containers (SPAWNER=docker): python manage.py build_image, then setup_volumes",
    "swarm": "Docker Swarm (SPAWNER=swarm): the containers above as swarm services",
    "dataset": "The CFPS dataset that notebooks query (portal/config/dataset.py)",
    "course": "Running a course: material, assignments, hand-ins (portal/config/course.py)",
}

TYPES = ("str", "bool", "int", "float", "list", "url", "size", "rate", "choice", "path", "secret")


@dataclass(frozen=True)
class Key:
    name: str
    section: str
    type: str
    default: str | dict[str, str]
    doc: str
    secret: bool = False
    generated: bool = False
    needed_by: tuple[str, ...] = ()  # "portal", "hub": prod refuses to start without it
    choices: tuple[str, ...] = ()
    example: str | None = None  # what .env.example shows, when not the dev default
    sep: str = ","  # between the items of a list
    # A secret shorter than this, or not matching `pattern` in full, is a placeholder prod refuses
    # (portal/config/placeholders.py); `make` says how to generate a real one.
    min_length: int = 0
    pattern: str = r"\S+"
    make: str = "secrets.token_urlsafe(48)"

    def default_for(self, profile: str) -> str:
        if isinstance(self.default, dict):
            return self.default.get(profile, "")
        return self.default

    @property
    def example_value(self) -> str:
        """What .env.example shows: the default, except for secrets and per-profile defaults (empty, so a copy
        of the example in prod still gets prod's)."""
        if self.example is not None:
            return self.example
        return "" if self.secret or isinstance(self.default, dict) else self.default_for("dev")


def _k(name, section, type_, default, doc, **kwargs) -> Key:
    assert section in SECTIONS and type_ in TYPES, (name, section, type_)
    return Key(name, section, type_, default, doc, **kwargs)


KEYS: tuple[Key, ...] = (
    # --- profile ---
    _k("APP_PROFILE", "profile", "choice", "dev", "dev: the embedded set-up (SQLite, in-process cache, no Nginx). "
       "prod: refuses to start without SECRET_KEY, DATABASE_URL, REDIS_URL and APP_DOMAIN_NAME, and serves both "
       "origins over https only.", choices=("dev", "prod")),
    _k("DEBUG", "profile", "bool", "false", "Detailed error pages. Never true on a server others can reach."),
    _k("TIME_ZONE", "profile", "str", "Asia/Shanghai", "Time zone of the dates shown, invite expiry days and due times."),
    # --- web ---
    _k("APP_DOMAIN_NAME", "web", "str", "", "The portal's host name on a server, e.g. cfps.example.edu.cn; the portal is "
       "then https://APP_DOMAIN_NAME. Empty: the embedded default, http://127.0.0.1:PORT."),
    _k("HUB_DOMAIN_NAME", "web", "str", "", "The hub's host name. Empty: hub.APP_DOMAIN_NAME (one DNS record more, or "
       "a CNAME)."),
    _k("USER_SUBDOMAINS", "web", "bool", "true", "Each student's server on a host of its own, "
       "<name>.HUB_DOMAIN_NAME (<name>.localhost in dev), so a student's page can act neither as another student "
       "nor as staff; needs a wildcard DNS record and certificate on a server (docs: operator guide). false puts "
       "every server on the hub's host: prod refuses it unless ALLOW_SHARED_HUB_ORIGIN is true."),
    _k("ALLOW_SHARED_HUB_ORIGIN", "web", "bool", "false", "The documented opt-out for USER_SUBDOMAINS=false in prod. "
       "Then any student's page, opened by another student, can act as that student on the hub, and staff hold no "
       "rights on the hub at all (manage servers from the portal's usage page)."),
    _k("PUBLIC_URL", "web", "url", "", "The portal's origin, without a path. Empty: http://127.0.0.1:PORT, or "
       "https://APP_DOMAIN_NAME when set."),
    _k("HUB_PUBLIC_URL", "web", "url", "", "The hub's origin, without a path (the hub lives under /jupyter/ there). "
       "Empty: http://localhost:PORT, or https://HUB_DOMAIN_NAME. Must have another host name than PUBLIC_URL."),
    _k("ALLOWED_HOSTS", "web", "list", "", "More host names the portal answers to (aliases), comma-separated; never "
       "the hub's. The portal's own host and 127.0.0.1 are always allowed."),
    _k("BIND_IP", "web", "str", "127.0.0.1", "Address the proxy listens on. 127.0.0.1 keeps it on this machine; "
       "0.0.0.0 opens it to the network (then set PUBLIC_URL and HUB_PUBLIC_URL to the names others type)."),
    _k("PORT", "web", "int", "8000", "The public port: the proxy's. Everything else listens on 127.0.0.1 only."),
    _k("PORTAL_PORT", "web", "int", "8010", "The portal (gunicorn), reached through the proxy or Nginx."),
    _k("HUB_PORT", "web", "int", "8081", "The hub's own port (the proxy and the portal call it on loopback)."),
    _k("PROXY_API_PORT", "web", "int", "8001", "The proxy's REST API, used by the hub to add and remove routes."),
    _k("BIND", "web", "str", "", "gunicorn's listening address, when not 127.0.0.1:PORTAL_PORT (e.g. a Unix socket, "
       "unix:/run/cfps/portal.sock)."),
    # --- database ---
    _k("DATABASE_URL", "database", "url", "", "Empty: SQLite in var/portal.sqlite3. MariaDB/MySQL: "
       "mysql://user:pass@127.0.0.1:3306/cfps_portal.", secret=True),
    _k("REDIS_URL", "database", "url", "", "Shared cache for the guess counts; required in prod, unused in dev. "
       "Example: redis://127.0.0.1:6379/0.", secret=True),
    # --- limits ---
    _k("SIGNUP_CODE_FAILURE_LIMIT", "limits", "rate", "20/10m", "Wrong (non-existent) invite codes per client "
       "address: stops enumerating codes. Only failures count, so a class behind one NAT address signs up at once."),
    _k("LOGIN_USER_FAILURE_LIMIT", "limits", "rate", "10/m", "Failed logins per username from browsers that have "
       "not logged in to it before (stops guessing a password)."),
    _k("LOGIN_IP_FAILURE_LIMIT", "limits", "rate", "100/10m", "Failed logins per client address, across usernames."),
    _k("LOGIN_DEVICE_FAILURE_LIMIT", "limits", "rate", "10/m", "Failed logins per device cookie (a browser that "
       "logged in to the account before), so knowing a student's name cannot lock them out of their own browser."),
    _k("DEVICE_COOKIE_DAYS", "limits", "int", "365", "How long a device cookie is valid, in days."),
    # --- requests (accounts/ratelimits.py: django-ratelimit, windows of fixed length, every request counts) ---
    # A login through the hub makes one token request (the code exchange); each hub session one more per
    # OAUTH_ACCESS_TOKEN_SECONDS (a refresh grant). 600/m: a class of 200 logging in within one minute uses a third.
    _k("OAUTH_TOKEN_RATE_LIMIT", "requests", "rate", "600/m", "Requests to the OAuth token endpoint per client and "
       "per client address. The hub is ONE client, on 127.0.0.1, for every student: a login through it makes one "
       "request, so keep this at least three times the most logins you expect in a minute."),
    _k("OAUTH_USERINFO_RATE_LIMIT", "requests", "rate", "60/m", "Requests to the userinfo endpoint per access token "
       "(the hub asks once per user every HUB_AUTH_REFRESH_SECONDS and before each start of a server)."),
    _k("PASSWORD_RESET_RATE_LIMIT", "requests", "rate", "3/h", "Reset mails per e-mail address and per account "
       "(every request counts, sent or not)."),
    _k("PASSWORD_RESET_IP_RATE_LIMIT", "requests", "rate", "100/h", "Reset requests per client address (a class "
       "behind one NAT address shares it)."),
    _k("SET_PASSWORD_RATE_LIMIT", "requests", "rate", "10/10m", "Posts of the set-password page (a printed link or "
       "a reset mail) per account; each valid one costs a password hash."),
    _k("SET_PASSWORD_IP_RATE_LIMIT", "requests", "rate", "600/10m", "Posts of the set-password page per client "
       "address: a class of 200 behind one NAT address setting passwords from their slips at once, a few tries each."),
    _k("ADMIN_UPLOAD_RATE_LIMIT", "requests", "rate", "100/h", "Uploads per staff account: the roster import's "
       "steps and the posts of the course material and assignment forms."),
    _k("SERVER_STATE_RATE_LIMIT", "requests", "rate", "60/m", "Requests per account to /api/server/, the state of "
       "one's own server that the portal's home page asks every few seconds while it starts."),
    _k("ANNOUNCEMENTS_RATE_LIMIT", "requests", "rate", "60/m", "Requests to /api/announcements/ per client address "
       "(the hub reads it every 15 s from 127.0.0.1; nothing else needs it)."),
    # --- accounts ---
    _k("ADMIN_USERNAME", "accounts", "str", "cfps-admin", "Superuser created by `python manage.py bootstrap` "
       "('admin' itself is reserved)."),
    _k("ADMIN_PASSWORD", "accounts", "str", "", "Its password. Empty: bootstrap generates one and prints it once. "
       "Never changes an existing account.", secret=True),
    _k("ADMIN_EMAIL", "accounts", "str", "", "Its e-mail address (optional)."),
    _k("INVITE_CODES", "accounts", "list", "", "Invite codes created by bootstrap, separated by ';', each with "
       "unlimited uses (case-insensitive).", sep=";"),
    _k("SIGNUP_EMAIL", "accounts", "choice", "", "Sign-up asks for an e-mail address (used only for password "
       "reset): optional, required or off. Empty: optional with a mail server, else off.",
       choices=("", "optional", "required", "off")),
    _k("STAFF_OTP", "accounts", "choice", {"dev": "optional", "prod": "required"}, "Staff sign in with a second "
       "factor (an authenticator app's code; accounts/otp.py). required: every staff account enrols at its first "
       "login and gives a code at every login. optional: only staff who enrolled are asked (dev only; prod "
       "refuses it).", choices=("required", "optional")),
    _k("STAFF_IDLE_MINUTES", "accounts", "int", "60", "A staff member's portal session ends after this many "
       "minutes without a request (at least 1)."),
    _k("SHARED_PC_IDLE_MINUTES", "accounts", "int", "15", "A login with 这是公共电脑 (a shared computer) ticked "
       "ends when the browser closes and after this many minutes without a request to the portal (at least 1); "
       "its hub session ends with it."),
    # --- audit ---
    _k("AUDIT_RETENTION_DAYS", "audit", "int", "365", "Days the record of who did what keeps an entry; the course "
       "worker deletes older ones once a day (manage.py prune_audit does the same at once)."),
    # --- mail ---
    _k("EMAIL_URL", "mail", "url", "", "One URL: smtp://user:password@host:587?tls=1 (STARTTLS), "
       "smtps://user:password@host:465 (TLS), optional &timeout=10; %-encode @ or : in user or password. Or the "
       "EMAIL_* keys below.", secret=True),
    _k("EMAIL_HOST", "mail", "str", "", "The mail server (without EMAIL_URL)."),
    _k("EMAIL_PORT", "mail", "int", "25", "Its port."),
    _k("EMAIL_HOST_USER", "mail", "str", "", "The account on it."),
    _k("EMAIL_HOST_PASSWORD", "mail", "str", "", "Its password.", secret=True),
    _k("EMAIL_USE_TLS", "mail", "bool", "false", "STARTTLS (usually port 587)."),
    _k("EMAIL_USE_SSL", "mail", "bool", "false", "TLS from the first byte (usually port 465)."),
    _k("EMAIL_TIMEOUT", "mail", "int", "10", "Seconds to wait for the mail server."),
    _k("DEFAULT_FROM_EMAIL", "mail", "str", "", "The sender, e.g. noreply@example.edu.cn (required with a mail "
       "server, unless its user is an address)."),
    # --- hub ---
    _k("PROXY", "hub", "choice", {"dev": "python", "prod": "node"}, "Which configurable-http-proxy: python (needs "
       "no Node.js) or node (JupyterHub's own, faster; installed into node_modules/ with npm ci).",
       choices=("python", "node")),
    _k("SPAWNER", "hub", "choice", "", "How users' servers run: docker (a container each), swarm (the same "
       "containers as swarm services) or local (local processes, NO isolation; refused in prod). Empty: docker "
       "in prod; in dev docker when the engine answers and DOCKER_IMAGE exists, else local.",
       choices=("", "docker", "swarm", "local")),
    _k("HUB_CLIENT_ID", "hub", "str", "jupyterhub", "The hub's OAuth client at the portal (bootstrap registers it)."),
    _k("OAUTH_ACCESS_TOKEN_SECONDS", "hub", "int", "3600", "Lifetime of the access and ID tokens the portal gives "
       "the hub."),
    _k("OAUTH_REFRESH_TOKEN_SECONDS", "hub", "int", "1209600", "Lifetime of refresh tokens (14 days)."),
    _k("HUB_AUTH_REFRESH_SECONDS", "hub", "int", "60", "How often the hub re-checks a user with the portal: "
       "deactivation, staff rights, groups."),
    _k("HUB_IDLE_TIMEOUT_SECONDS", "hub", "int", "3600", "Stop a user's server after this many idle seconds; 0 "
       "disables the idle culler."),
    _k("HUB_CULL_EVERY_SECONDS", "hub", "int", "", "How often the culler looks for idle servers. Empty: half the "
       "timeout, between 10 and 300."),
    _k("HUB_ACTIVE_SERVER_LIMIT", "hub", "int", "0", "Most user servers running at once; 0: no limit."),
    _k("HUB_CONCURRENT_SPAWN_LIMIT", "hub", "int", "20", "Most servers starting at once (others are asked to retry)."),
    _k("HUB_SPAWN_TIMEOUT_SECONDS", "hub", "int", "120", "Seconds a server may take to start before the hub gives up."),
    _k("START_SERVER_AT_LOGIN", "hub", "bool", "true", "A student's portal login asks the hub to start their server "
       "in the background, so it is up when they open JupyterLab (not for staff; the login never waits for the "
       "hub). Off: the server starts when they open JupyterLab."),
    # --- secrets ---
    _k("SECRET_KEY", "secrets", "secret", "", "Signs sessions and CSRF tokens. Generate: python3 -c 'import "
       "secrets; print(secrets.token_urlsafe(50))'.", secret=True, generated=True, needed_by=("portal",),
       min_length=50, make="secrets.token_urlsafe(50)"),
    _k("HUB_CLIENT_SECRET", "secrets", "secret", "", "The hub's OAuth client secret at the portal.", secret=True,
       generated=True, needed_by=("portal", "hub"), min_length=32),
    _k("HUB_API_TOKEN", "secrets", "secret", "", "The portal's token for the hub's API (stops a deactivated "
       "student's server). Random: the hub hashes it once, as the tokens it makes.", secret=True, generated=True,
       needed_by=("portal", "hub"), min_length=32),
    _k("CONFIGPROXY_AUTH_TOKEN", "secrets", "secret", "", "Shared by the hub and its proxy.", secret=True,
       generated=True, needed_by=("hub",), min_length=32),
    _k("PROXY_SECRET", "secrets", "secret", "", "Our own proxies send it to the portal; only then does the portal "
       "believe X-Forwarded-For, so a client cannot choose the address its limits count.", secret=True,
       generated=True, needed_by=("portal", "hub"), min_length=32),
    _k("JUPYTERHUB_CRYPT_KEY", "secrets", "secret", "", "Encrypts the login tokens the hub stores: 64 hex "
       "characters, `new;old` while rotating (python3 -c 'import secrets; print(secrets.token_hex(32))').",
       secret=True, generated=True, needed_by=("hub",), min_length=64,
       pattern=r"[0-9a-fA-F]{64}(;[0-9a-fA-F]{64})*", make="secrets.token_hex(32)"),
    _k("OIDC_RSA_PRIVATE_KEY_FILE", "secrets", "path", "", "PEM file with the RSA key that signs OpenID Connect ID "
       "tokens. Required in prod (openssl genrsa -out oidc.pem 3072); empty in dev: generated once."),
    _k("OIDC_RSA_PRIVATE_KEY", "secrets", "secret", "", "The same key inline, with \\n for line breaks (instead of "
       "the file).", secret=True),
    _k("DATASET_DB_PASSWORD", "secrets", "secret", "", "The notebooks' dataset account's password when "
       "DATASET_DATABASE_URL names none (dev only; prod wants it in the URL).", secret=True, generated=True),
    # --- gunicorn ---
    _k("GUNICORN_WORKERS", "gunicorn", "int", "", "Worker processes. Empty: 1 in dev (its in-process guess counts "
       "stay exact); one per CPU core, at least 2, in prod (the counts are in Redis)."),
    _k("GUNICORN_THREADS", "gunicorn", "int", "32", "Threads per worker process, so pages never queue behind a "
       "class's password checks."),
    _k("PASSWORD_CHECKS_AT_ONCE", "gunicorn", "int", "", "Password checks (about half a second of CPU each) "
       "running at once per worker process; more wait their turn. Empty: the CPU cores shared out over the "
       "worker processes, at least 1 each."),
    # --- deploy ---
    _k("SERVICE_USER", "deploy", "str", "cfps", "The machine account the systemd units run as (not root)."),
    _k("SECURE_HSTS_SECONDS", "deploy", "int", "31536000", "How long browsers remember to use https only (Nginx "
       "sends it for both names), in seconds."),
    _k("SECURE_HSTS_INCLUDE_SUBDOMAINS", "deploy", "bool", "false", "Also promise https for every subdomain of "
       "APP_DOMAIN_NAME; only if every sibling host serves https."),
    _k("DOCKER_BRIDGE_INTERFACES", "deploy", "list", "docker0,br-+", "Host interfaces the users' containers come "
       "from, for the firewall (iptables names; br-+ is every user-defined Docker network)."),
    # --- containers ---
    _k("DOCKER_IMAGE", "containers", "str", "cfps-notebook:latest", "The notebook image (build_image makes it "
       "without Docker Hub)."),
    _k("DEBIAN_MIRROR", "containers", "url", "", "Where build_image fetches Debian, e.g. a campus mirror. Empty: "
       "the Debian mirror this machine's apt uses."),
    _k("PIP_INDEX_URL", "containers", "url", "", "The PyPI index build_image downloads the image's packages from. "
       "Empty: whatever pip on this machine is configured with."),
    _k("DOCKER_DATA_VOLUME", "containers", "str", "cfps-common-data", "The read-only volume every container mounts "
       "at ~/data (example notebooks, helpers, sample data)."),
    _k("DOCKER_TEAM_VOLUME", "containers", "str", "cfps-team-shared", "The read-write volume every container "
       "mounts at ~/team-shared."),
    _k("DATA_ROOT", "containers", "path", "", "The folder holding those volumes' files (data/, team-shared/). "
       "Empty: var/volumes; relative paths are relative to the repository."),
    _k("MEM_LIMIT", "containers", "size", "2G", "Memory per container, e.g. 2G, 512M."),
    _k("CPU_LIMIT", "containers", "float", "1.0", "CPUs per container, e.g. 1.0, 0.5."),
    _k("GROUP_LIMITS", "containers", "str", "", "Per-group overrides, group:memory:cpus separated by ';', either "
       "may be empty, e.g. class-a:2G:1.0;research:8G:4;tutors::2 (the largest of each wins)."),
    # Threads count as tasks. Measured: the server and 3 kernels that ran numpy/pandas used 60 on a 2-CPU host;
    # each numpy kernel starts a BLAS thread per CPU of the host, so a 64-CPU server needs ~70 per kernel. 512
    # leaves room for a handful of kernels and a terminal there, and stops a fork bomb.
    _k("PIDS_LIMIT", "containers", "int", "512", "Most processes and threads in one container (a fork bomb stops "
       "there); at least 32."),
    _k("USER_DISK_QUOTA", "containers", "size", "", "Disk quota per user, e.g. 5G, where the engine can enforce it "
       "(Docker's root on xfs with pquota); elsewhere setup_volumes and the hub's log say it is not. Empty: none."),
    _k("DOCKER_NETWORK", "containers", "str", "cfps-users", "The containers' network: cfps-users is a bridge "
       "setup_volumes creates with inter-container traffic off. bridge lets containers reach each other; host "
       "(no isolation at all) is for tests and refused in prod."),
    _k("DOCKER_INTERFACE_IP", "containers", "str", "", "This machine's address on DOCKER_NETWORK, where containers "
       "reach the hub. Empty: asked from Docker when the hub starts."),
    # --- swarm ---
    _k("SWARM_MANAGER_IP", "swarm", "str", "", "This machine's (the manager's) address on the nodes' network. "
       "Set: servers run on worker nodes only. Empty: one node, this one (no network isolation; refused in prod)."),
    _k("SWARM_VOLUMES", "swarm", "str", "local", "Where homes live: local (each node's Docker volumes; one node "
       "only), shared (DATA_ROOT mounted at the same path on every node) or nfs://HOST/PATH."),
    _k("SWARM_NFS_OPTIONS", "swarm", "str", "nfsvers=4", "Mount options after addr= for SWARM_VOLUMES=nfs://..."),
    _k("SWARM_WORKERS", "swarm", "list", "", "The worker nodes' networks (CIDR, comma-separated): gen_firewall lets "
       "them reach HUB_PORT."),
    # --- dataset ---
    _k("DATASET_DATABASE_URL", "dataset", "url", "", "The read-only account notebooks use: "
       "mysql://jupyterhub:PASSWORD@HOST:3306/cfps. Empty: the embedded synthetic sample (SQLite, read-only). "
       "Every notebook can read this password.", secret=True),
    _k("DATASET_ADMIN_URL", "dataset", "url", "", "An account allowed to create users and grant, for "
       "provision_dataset_user and load_sample_data only; never given to notebooks.", secret=True),
    # Docker's bridge networks: 172.16.0.0/12 holds every default Docker address pool.
    _k("DATASET_USER_HOST", "dataset", "list", "localhost,127.0.0.1,172.16.0.0/255.240.0.0", "Host patterns the "
       "read-only account may connect from (one MySQL account each): this machine and Docker's bridges."),
    # The account is shared by every student, so this is a class's total: about 2 per student (a notebook's
    # connection plus a second kernel) for a class of 50, below MariaDB's default max_connections (151).
    _k("DATASET_MAX_CONNECTIONS", "dataset", "int", "100", "Most connections the read-only account holds at once, "
       "per host pattern: a class's total. 0: no limit."),
    # Long enough for any honest query on the CFPS tables (a full scan takes well under a second), short enough
    # that a runaway cross join is cut off before it holds the server for long.
    _k("DATASET_MAX_STATEMENT_SECONDS", "dataset", "float", "60", "Longest a statement of the read-only account "
       "may run, in seconds (MariaDB's MAX_STATEMENT_TIME). 0: no limit."),
    # --- course ---
    _k("COURSE_ROOT", "course", "path", "", "Uploaded material (immutable versions) and collected hand-ins live "
       "here. Empty: var/course. Back it up with var/."),
    _k("COURSE_HANDIN_LIMIT", "course", "size", "50M", "The largest hand-in (one student's assignment folder): the "
       "default of a new assignment, which staff can change per assignment. A larger folder is refused with its "
       "size in the message."),
    _k("COURSE_HANDIN_MAX_FILES", "course", "int", "2000", "The most files in one hand-in."),
    _k("COURSE_UPLOAD_LIMIT", "course", "size", "500M", "The largest upload of material (a zip's total size once "
       "unpacked); a zip bomb is refused before anything is written."),
    _k("COURSE_UPLOAD_MAX_FILES", "course", "int", "5000", "The most files in one upload."),
    _k("COURSE_HOME_ACCESS", "course", "choice", "auto", "How the course worker reaches students' homes: auto "
       "(folders it may write directly, Docker volumes and other folders through short helper containers of "
       "DOCKER_IMAGE without network), container (always a helper), direct (never one: the worker must be able "
       "to write every home).", choices=("auto", "container", "direct")),
    _k("COURSE_HELPER_BATCH", "course", "int", "20", "How many homes one helper container serves in a row when a "
       "hand-out or a due-time collection reaches many students: one container start for them all instead of one "
       "each. 1: a helper container per home."),
    # Measured on the 2-core machine (tests/bench/warm.py --sweep, 2026-12-06, medians of 2 rounds, load 3 to 4): 10
    # servers warmed in 14.8 s one at a time, 6.2 s two, 5.4 s four and 8.2 s eight at once; beyond about twice the
    # cores the starts only queue for the CPU and the engine.
    _k("WARMUP_CONCURRENCY", "course", "int", "4", "Most servers a warm-up (预热服务器) starts at once, and most "
       "users' hub calls (starts at login, hub users) each portal process makes at once. Measured on 2 cores: 10 "
       "servers in 5.4 s at 4 (14.8 s one at a time, 6.2 s at 2, 8.2 s at 8): about twice the cores."),
    _k("WARMUP_GRACE_MINUTES", "course", "int", "30", "The idle culler leaves a warmed server alone for this long "
       "after its warm-up, then culls it as usual (at most HUB_IDLE_TIMEOUT_SECONDS/60 + 55)."),
)  # fmt: skip

BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}
assert len(BY_NAME) == len(KEYS), "a key is declared twice"

# Keys that were read once and mean something else now: start-up says what replaced them.
RETIRED = {
    "SIGNUP_RATE_LIMIT": "SIGNUP_CODE_FAILURE_LIMIT (only failures count now)",
    "LOGIN_RATE_LIMIT": "LOGIN_USER_FAILURE_LIMIT (only failures count now)",
    "LOGIN_IP_RATE_LIMIT": "LOGIN_IP_FAILURE_LIMIT (only failures count now)",
    "TRUSTED_PROXIES": "PROXY_SECRET",
}


@dataclass
class Unknown:
    name: str
    nearest: str = ""
    retired_by: str = ""

    def message(self) -> str:
        if self.retired_by:
            return f"{self.name} is no longer read: remove it from .env (see {self.retired_by})"
        hint = f" (did you mean {self.nearest}?)" if self.nearest else ""
        return f"{self.name} in .env is not a known key{hint}; .env.example lists them all"


def unknown_keys(names) -> list[Unknown]:
    """The names that no key of the table has, each with the nearest known one or what replaced it."""
    found = []
    for name in names:
        if name in BY_NAME:
            continue
        if name in RETIRED:
            found.append(Unknown(name, retired_by=RETIRED[name]))
            continue
        nearest = difflib.get_close_matches(name, BY_NAME, n=1, cutoff=0.6)
        found.append(Unknown(name, nearest=nearest[0] if nearest else ""))
    return found


def secrets_needed_by(process: str) -> list[str]:
    return [key.name for key in KEYS if process in key.needed_by]


@dataclass(frozen=True)
class Row:
    """One key as the docs' reference shows it (docs/_ext/configref.py renders these)."""

    name: str
    type: str
    default_dev: str
    default_prod: str
    secret: bool
    doc: str
    section: str = field(default="")


def rows() -> list[Row]:
    return [
        Row(k.name, k.type, k.default_for("dev"), k.default_for("prod"), k.secret, k.doc, SECTIONS[k.section])
        for k in KEYS
    ]


# --- generated files -----------------------------------------------------------------------------------------
EXAMPLE_HEADER = """\
# Configuration of the CFPS portal and its JupyterHub (one file for both). ./run.sh copies this file to .env
# on first run and fills in SECRET_KEY and one invite code. A variable set in the process environment wins.
# Syntax: KEY=value; an empty value means the default (shown after each key's doc where it is not the value
# below). Quote a value with spaces or a ' #'. No $VAR expansion (read by python-dotenv without
# interpolation, the way systemd's EnvironmentFile= reads it).
# GENERATED from portal/config/table.py by `python -m portal.config example`: edit the table, not this file.
"""


def _wrap(text: str, width: int = 110, prefix: str = "# ") -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix) or [prefix.rstrip()]


def render_env_example() -> str:
    lines = [EXAMPLE_HEADER.rstrip("\n")]
    for section, title in SECTIONS.items():
        lines += ["", f"# --- {title} " + "-" * max(3, 106 - len(title))]
        for key in (k for k in KEYS if k.section == section):
            doc = key.doc
            if isinstance(key.default, dict):
                doc += f" Empty: {key.default_for('dev')} in dev, {key.default_for('prod')} in prod."
            if key.secret:
                doc += " [secret]"
            lines += _wrap(doc)
            lines.append(f"{key.name}={key.example_value}")
    return "\n".join(lines) + "\n"
