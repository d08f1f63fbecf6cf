"""Keep tokens, codes and secrets out of the portal's logs (gunicorn's access log and Django's logging).

Rules:
- A query parameter whose name contains one of SECRET_WORDS (`code`, `state`, `access_token`,
  `id_token_hint`, `client_secret`, `_xsrf`...) keeps its name and loses its value: `code=[secret]`. The same
  holds inside a URL that is itself percent-encoded in another one (`?next=/o/authorize/%3Fstate%3D...`)
  and in the Referer, which is where the hub's `/oauth_callback?code=...` would otherwise show up.
- One-time links carry their token in the path: `/accounts/reset/<uid>/<token>/` and
  `/accounts/set-password/<uid>/<token>/` are logged as `/accounts/reset/<uid>/[secret]/`.
- Everything else is logged as it was, so the log stays useful.
JupyterHub and Jupyter Server mask the same kind of parameters in their own request logs.
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger

SECRET_WORDS = ("token", "code", "secret", "password", "state", "key", "auth", "xsrf", "ticket")
MASK = "[secret]"

_WORDS = "|".join(SECRET_WORDS)
# name=value after ? or & (or their percent-encoded forms); the value ends at &, %26, whitespace or a quote.
_PARAM = re.compile(rf"(?i)((?:[?&;]|%3F|%26)[\w.\-]*(?:{_WORDS})[\w.\-]*(?:=|%3D))((?:(?!%26)[^&\s\"'])*)")
# The token segment of a one-time link; the reset view's own next step (`set-password/`) stays readable.
_PATH = re.compile(r"(/(?:reset|set-password)/[^/\s?\"']+/)(?!set-password/)([^/\s?\"']+)")


def scrub(text: str) -> str:
    """`text` (a URL, a request line, a log message) with every secret value replaced by MASK."""
    if not text or not isinstance(text, str):
        return text
    text = _PARAM.sub(lambda m: m.group(1) + (MASK if m.group(2) else ""), text)
    return _PATH.sub(lambda m: m.group(1) + MASK, text)


class ScrubSecretsFilter(logging.Filter):
    """Django's logging: masks secrets in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class ScrubbingLogger(Logger):
    """gunicorn's logger (deploy/gunicorn.conf.py `logger_class`): the access log's request line, path,
    query string and Referer are scrubbed before they are formatted."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = scrub(atoms[key])
        if atoms.get("q"):  # the bare query string, without its "?"
            atoms["q"] = scrub("?" + atoms["q"])[1:]
        return atoms


def log_tornado_request(handler) -> None:
    """Tornado's request log line (`Application(log_function=...)`), with the URI scrubbed: the Python proxy
    logs every 4xx and 5xx request it passes on, query string included."""
    from tornado.log import access_log

    status = handler.get_status()
    log = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    request = handler.request
    log("%d %s %s (%s) %.2fms", status, request.method, scrub(request.uri), request.remote_ip,
        1000.0 * request.request_time())  # fmt: skip
