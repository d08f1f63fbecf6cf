"""Render the deploy files (Nginx site, systemd units, iptables rules) from the templates in `deploy/`.

Rules:
- A generated file comes only from its template file in `deploy/` plus values from settings; nobody edits
  the output by hand (run the command again instead).
- Templates use Django's template language with autoescaping off: `{{ value }}` and `{% if %}` never clash
  with Nginx's `$variables` or systemd's `%specifiers`. Every value put into a template is checked first
  (`check_value`), so a stray newline, `;`, brace or quote in `.env` cannot add a directive.
- Writing is idempotent: an unchanged file is left alone (same mtime), a changed one is replaced atomically,
  and `--dry-run` only says what would change.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from django.core.management.base import CommandError
from django.template import Context, Engine

from portal.commands import SayMixin
from portal.config.env import BASE_DIR

DEPLOY_DIR = BASE_DIR / "deploy"

_engine = Engine(dirs=[str(DEPLOY_DIR)], autoescape=False, debug=False)

# One DNS name: labels of letters, digits and hyphens (no leading/trailing hyphen), at least one dot or
# "localhost"; also an IPv4 address, which tests use.
_DOMAIN = re.compile(r"(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*", re.IGNORECASE)
# Values that end up inside a directive: a path, a size, a user name... Nothing that ends one or starts another.
_SAFE = re.compile(r"[A-Za-z0-9_./:@+,=\-\[\]]+")


def check_domain(name: str, key: str = "APP_DOMAIN_NAME") -> str:
    name = name.strip().lower().rstrip(".")
    if not name:
        raise CommandError(f"{key} is empty; set it in .env to the server's public host name, e.g. hub.example.edu.cn")
    if not _DOMAIN.fullmatch(name):
        raise CommandError(f"{key}={name!r} is not a host name (letters, digits, '-' and '.')")
    return name


def check_value(key: str, value, pattern: re.Pattern = _SAFE) -> str:
    text = str(value)
    if not pattern.fullmatch(text):
        raise CommandError(f"{key}={text!r} has characters that cannot go into a generated file")
    return text


def render(template: str, context: dict) -> str:
    """The template `deploy/<template>` filled with `context`; blank-line runs left by `{% if %}` squeezed."""
    text = _engine.get_template(template).render(Context(context, autoescape=False))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def write(command, path: Path, text: str, *, dry_run: bool, mode: int = 0o644) -> bool:
    """Write `text` to `path` unless it is already there; report through `command`. True if it changed."""
    path = Path(path)
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    if current == text:
        command.say(f"{path}: unchanged.")
        return False
    verb = "would create" if current is None else "would update"
    if dry_run:
        command.stdout.write(f"{path}: {verb} (dry run, nothing written).")
        return True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    command.stdout.write(command.style.SUCCESS(f"{path}: {'created' if current is None else 'updated'}."))
    return True


class GeneratorCommand(SayMixin):
    """Mixin for the gen_* commands: no system checks or database, `say` obeys --verbosity."""

    requires_system_checks: list = []
    requires_migrations_checks = False

    def emit(self, text: str, output, *, dry_run: bool, then: str, what: str = "file is") -> None:
        """Print `text`, or write it owner-only to `output` and say `then` (the next step), for the one-file
        generators (gen_nginx, gen_firewall): both files hold what an attacker would like to read."""
        if output is None:
            if dry_run:
                raise CommandError(f"--dry-run needs --output (without it the {what} only printed)")
            self.stdout.write(text, ending="")
            return
        write(self, output, text, dry_run=dry_run, mode=0o600)
        if not dry_run:
            self.say(then)
