"""Tell a real secret from a placeholder, for the prod start-up checks of both the portal and the hub.

Rules: a secret is refused when it is shorter than its minimum length, uses fewer than 5 distinct
characters (`xxxx…`, `0000…`), or contains a word people type instead of a secret (`change`,
`placeholder`, `example`). Generated secrets (`secrets.token_urlsafe(48)`, `secrets.token_hex(32)`) always pass.

Imports nothing from Django, so `hubconfig/` can use it too.
"""

from __future__ import annotations

import re

# key -> (minimum length, regular expression the value must match in full, how to generate one)
HEX_KEYS = r"[0-9a-fA-F]{64}(;[0-9a-fA-F]{64})*"
SECRETS = {
    "SECRET_KEY": (50, r"\S+", "secrets.token_urlsafe(50)"),
    "HUB_CLIENT_SECRET": (32, r"\S+", "secrets.token_urlsafe(48)"),
    "HUB_API_TOKEN": (32, r"\S+", "secrets.token_urlsafe(48)"),
    "CONFIGPROXY_AUTH_TOKEN": (32, r"\S+", "secrets.token_urlsafe(48)"),
    "PROXY_SECRET": (32, r"\S+", "secrets.token_urlsafe(48)"),
    # JupyterHub wants 32-byte keys; hex is the form .env.example documents (`new;old` while rotating).
    "JUPYTERHUB_CRYPT_KEY": (64, HEX_KEYS, "secrets.token_hex(32)"),
}
PLACEHOLDER_WORDS = ("change", "placeholder", "example")


def is_placeholder(key: str, value: str) -> bool:
    min_length, pattern, _ = SECRETS[key]
    if len(value) < min_length or len(set(value)) < 5 or not re.fullmatch(pattern, value):
        return True
    return any(word in value.lower() for word in PLACEHOLDER_WORDS)


def placeholders(values: dict[str, str]) -> list[str]:
    """The keys among `values` (key -> value; empty values are someone else's error) that hold placeholders."""
    return [key for key, value in values.items() if value and is_placeholder(key, value)]


def message(keys: list[str]) -> str:
    """One line naming the placeholder secrets and how to make real ones."""
    how = "; ".join(f"{key}: python3 -c 'import secrets; print({SECRETS[key][2]})'" for key in keys)
    return f"APP_PROFILE=prod refuses placeholder secrets in .env: {', '.join(keys)}. Generate each one ({how})"
