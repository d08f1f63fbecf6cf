"""Outgoing e-mail (password reset mails) from `.env`: `EMAIL_URL`, or the usual `EMAIL_*` keys.

    EMAIL_URL=smtp://user:password@smtp.example.edu.cn:587?tls=1     STARTTLS on 587
    EMAIL_URL=smtps://user:password@smtp.example.edu.cn:465          TLS from the first byte
    EMAIL_HOST=... EMAIL_PORT=587 EMAIL_HOST_USER=... EMAIL_HOST_PASSWORD=... EMAIL_USE_TLS=true

Rules:
- No host, no mail: `enabled` is False and the portal tells students to ask staff for a set-password link.
- A bad value stops start-up with one line naming the key (EnvError), never a failure at the first mail.
- User and password in the URL may be %-encoded (an `@` in a password is `%40`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from portal.config.env import Env, EnvError

SCHEMES = {"smtp": 25, "smtps": 465}
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def _flag(key: str, value: str) -> bool:
    value = value.strip().lower()
    if value in TRUE | FALSE:
        return value in TRUE
    raise EnvError(f"{key} must be true or false, not {value!r}")


def from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise EnvError(f"EMAIL_URL must start with smtp:// or smtps://, not {url.split(':', 1)[0]!r}")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise EnvError("EMAIL_URL has a port that is not a number") from None
    if not parts.hostname:
        raise EnvError("EMAIL_URL has no host name (smtp://user:password@host:587)")
    query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"tls", "ssl", "timeout"}
    if unknown:
        raise EnvError(f"EMAIL_URL: unknown option {sorted(unknown)[0]!r} (known: tls, ssl, timeout)")
    use_ssl = parts.scheme == "smtps" or _flag("EMAIL_URL ssl", query.get("ssl", ""))
    use_tls = _flag("EMAIL_URL tls", query.get("tls", ""))
    if use_ssl and use_tls:
        raise EnvError("EMAIL_URL: tls (STARTTLS) and ssl/smtps (TLS from the start) exclude each other")
    return {
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": _timeout("EMAIL_URL timeout", query.get("timeout", "10")),
    }


def _timeout(key: str, value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise EnvError(f"{key} must be a whole number of seconds, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class Mail:
    """Django's EMAIL_* settings (as attributes of the same names, lower case) plus `enabled`."""

    enabled: bool
    backend: str
    host: str
    port: int
    host_user: str
    host_password: str
    use_tls: bool
    use_ssl: bool
    timeout: int
    default_from_email: str


def from_env(env: Env) -> Mail:
    """Raises EnvError naming the bad key."""
    if url := env.get("EMAIL_URL"):
        config = from_url(url)
    else:
        config = {
            "EMAIL_HOST": env.get("EMAIL_HOST"),
            "EMAIL_PORT": env.int("EMAIL_PORT"),
            "EMAIL_HOST_USER": env.get("EMAIL_HOST_USER"),
            "EMAIL_HOST_PASSWORD": env.get("EMAIL_HOST_PASSWORD"),
            "EMAIL_USE_TLS": _flag("EMAIL_USE_TLS", env.get("EMAIL_USE_TLS")),
            "EMAIL_USE_SSL": _flag("EMAIL_USE_SSL", env.get("EMAIL_USE_SSL")),
            "EMAIL_TIMEOUT": _timeout("EMAIL_TIMEOUT", env.get("EMAIL_TIMEOUT")),
        }
        if config["EMAIL_USE_TLS"] and config["EMAIL_USE_SSL"]:
            raise EnvError("EMAIL_USE_TLS and EMAIL_USE_SSL exclude each other")
    enabled = bool(config["EMAIL_HOST"])
    sender = env.get("DEFAULT_FROM_EMAIL") or (config["EMAIL_HOST_USER"] if "@" in config["EMAIL_HOST_USER"] else "")
    if enabled and "@" not in sender:
        raise EnvError("DEFAULT_FROM_EMAIL must be set to the address mails come from (e.g. noreply@example.edu.cn)")
    # Without a server the console backend keeps Django from trying localhost:25 if anything sends.
    backend = "smtp" if enabled else "console"
    return Mail(
        enabled=enabled,
        backend=f"django.core.mail.backends.{backend}.EmailBackend",
        host=config["EMAIL_HOST"],
        port=config["EMAIL_PORT"],
        host_user=config["EMAIL_HOST_USER"],
        host_password=config["EMAIL_HOST_PASSWORD"],
        use_tls=config["EMAIL_USE_TLS"],
        use_ssl=config["EMAIL_USE_SSL"],
        timeout=config["EMAIL_TIMEOUT"],
        default_from_email=sender or "webmaster@localhost",
    )
