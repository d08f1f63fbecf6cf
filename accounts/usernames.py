"""The username rule, defined once and used by the model, every form and every command.

- Input is NFKC-normalised and case-folded, so `Alice`, `ALICE` and full-width `ａｌｉｃｅ` are one name.
- 3 to 32 characters from a-z, 0-9, `-` and `_`, starting with a letter or digit (the name becomes part
  of Docker container and volume names, which must start that way).
- Names that collide with system accounts, URL paths or roles are reserved.
- The name of a deleted or renamed account is retired for good (`accounts.models.RetiredUsername`): the
  hub and the users' file volumes know people by name, so a new owner of the name would get the old
  owner's files. `check_not_retired` needs the database, so it is separate from the pure validator.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

MIN_LENGTH = 3
MAX_LENGTH = 32
_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ALLOWED = re.compile(r"[a-z0-9_-]+")

RESERVED = frozenset(
    {
        # JupyterHub, containers and the notebook image
        "admin", "administrator", "root", "jovyan", "hub", "jupyter", "jupyterhub", "jupyterlab", "lab",
        "notebook", "proxy", "spawner", "services", "service", "culler", "token", "tokens",
        # URL paths on this origin
        "api", "static", "media", "user", "users", "accounts", "account", "login", "logout", "signup",
        "register", "oauth", "oauth2", "o", "auth", "health", "metrics", "i18n", "favicon",
        # system and database accounts
        "system", "sys", "daemon", "bin", "nobody", "www", "www-data", "nginx", "mysql", "mariadb",
        "postgres", "redis", "docker", "sudo", "operator", "backup", "mail", "cfps",
        # roles and words that would mislead other users
        "staff", "support", "help", "security", "null", "none", "anonymous", "everyone", "all",
    }
)  # fmt: skip


def normalize(value) -> str:
    """What the user meant: trimmed, compatibility-normalised, case-folded."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip().casefold()


@deconstructible
class UsernameValidator:
    """Validates an already-normalised username; each failure has its own message."""

    def __call__(self, value):
        if not isinstance(value, str):
            raise ValidationError(_("Enter a username."), code="invalid")
        # Which characters first: "张三" is told it cannot be Chinese, not that it needs one more character.
        if value and not _ALLOWED.fullmatch(value):
            raise ValidationError(
                _("A username can use only a-z, 0-9, '-' and '_' (no Chinese characters, spaces or other signs)."),
                code="invalid",
            )
        if len(value) < MIN_LENGTH:
            raise ValidationError(
                _("A username needs at least %(min)d characters."), code="too_short", params={"min": MIN_LENGTH}
            )
        if len(value) > MAX_LENGTH:
            raise ValidationError(
                _("A username can have at most %(max)d characters."), code="too_long", params={"max": MAX_LENGTH}
            )
        if not _PATTERN.fullmatch(value):
            raise ValidationError(_("A username must start with a letter or a digit."), code="invalid")
        if value in RESERVED:
            raise ValidationError(_("This username is reserved. Please choose another."), code="reserved")

    def __eq__(self, other):
        return isinstance(other, UsernameValidator)


def check_not_retired(value) -> None:
    """Refuse a name that belonged to a deleted or renamed account; sign-up, admin and imports all call it."""
    from django.apps import apps

    if apps.get_model("accounts", "RetiredUsername").objects.filter(username=value).exists():
        raise ValidationError(
            _("This username belonged to an account that was deleted and cannot be used again."), code="retired"
        )
