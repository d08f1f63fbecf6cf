"""Tell a real secret from a placeholder, for the prod start-up checks of both the portal and the hub.

Rules: a secret is refused when it is shorter than its minimum length, uses fewer than 5 distinct
characters (`xxxx…`, `0000…`), or contains a word people type instead of a secret (`change`,
`placeholder`, `example`). Generated secrets (`secrets.token_urlsafe(48)`, `secrets.token_hex(32)`) always pass.

Imports nothing from Django, so `hubconfig/` can use it too.
"""

from __future__ import annotations

import re

from portal.config import table

PLACEHOLDER_WORDS = ("change", "placeholder", "example")


def is_placeholder(key: str, value: str) -> bool:
    spec = table.BY_NAME[key]
    if len(value) < spec.min_length or len(set(value)) < 5 or not re.fullmatch(spec.pattern, value):
        return True
    return any(word in value.lower() for word in PLACEHOLDER_WORDS)


def placeholders(values: dict[str, str]) -> list[str]:
    """The keys among `values` (key -> value; empty values are someone else's error) that hold placeholders."""
    return [key for key, value in values.items() if value and is_placeholder(key, value)]


def message(keys: list[str]) -> str:
    """One line naming the placeholder secrets and how to make real ones."""
    how = "; ".join(f"{key}: python3 -c 'import secrets; print({table.BY_NAME[key].make})'" for key in keys)
    return f"APP_PROFILE=prod refuses placeholder secrets in .env: {', '.join(keys)}. Generate each one ({how})"
