"""Sphinx extension: the configuration reference (docs/reference/configuration.md), written at every build.

Rules:
- The page is generated, never edited: `render(rows)` turns a table of keys into its MyST Markdown, one
  `{envvar}` entry per key. Every other page links a key as {envvar}`MEM_LIMIT`, so the nitpicky build
  (`-n -W`) fails on a key that is not in the table, and a key's one line of doc lives in one place.
- A row is any object with `name`, `type`, `default_dev`, `default_prod`, `secret` (bool), `doc` and `section`
  (the shape of STYLE.md's table of keys). `default_prod` None means "the same as dev"; an empty `doc` refers
  the reader to the key documented just before it (keys that share a comment in `.env.example`).
- Where the rows come from is `rows()`, and only there. Today it parses `.env.example`: `# --- Title ---`
  lines are sections, the comment lines just above a key are its doc. When the declared table
  `portal.config.keys_table` exists, `rows()` returns it instead (the line marked SWITCH below) and the
  `.env.example` parser can go.
- The file is rewritten only when its text changes, so an unchanged table does not make Sphinx read the page
  again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
PAGE = DOCS / "reference" / "configuration.md"
ENV_EXAMPLE = REPO / ".env.example"

# Keys whose value is, or may carry, a credential (a password inside a URL counts).
SECRET_NAMES = {
    "SECRET_KEY",
    "HUB_CLIENT_SECRET",
    "HUB_API_TOKEN",
    "CONFIGPROXY_AUTH_TOKEN",
    "PROXY_SECRET",
    "JUPYTERHUB_CRYPT_KEY",
    "ADMIN_PASSWORD",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "DATASET_DATABASE_URL",
    "DATASET_ADMIN_URL",
}


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    default_dev: str
    default_prod: str | None
    secret: bool
    doc: str
    section: str


def rows() -> list:
    """The table the page is made from."""
    # SWITCH: once portal/config/keys_table.py declares the keys, replace the next line with
    #     from portal.config import keys_table; return list(keys_table.KEYS)
    # (any objects with the attributes of Row), and delete rows_from_env_example and SECRET_NAMES.
    return rows_from_env_example(ENV_EXAMPLE.read_text(encoding="utf-8"))


_SECTION = re.compile(r"^#\s*---\s*(?P<title>.*?)\s*-*\s*$")
_KEY = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def _type_of(value: str) -> str:
    """The type a default suggests; "" when the default is empty (the table will say)."""
    if not value:
        return ""
    if value in ("true", "false"):
        return "bool"
    if re.fullmatch(r"-?\d+", value):
        return "int"
    return "str"


def rows_from_env_example(text: str) -> list[Row]:
    """Rows from `.env.example`'s layout: sections, then comment lines directly above each key.

    A run of keys with no comment between them shares the comment above the first; only the first row
    carries it (the others have an empty doc, and the page points back to the first)."""
    found: list[Row] = []
    section = ""
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if match := _SECTION.match(stripped):
            section, comment = match["title"], []
        elif stripped.startswith("#"):
            comment.append(stripped[1:].strip())
        elif match := _KEY.match(stripped):
            value = match["value"].strip()
            found.append(
                Row(
                    name=match["name"],
                    type=_type_of(value),
                    default_dev=value,
                    default_prod=None,
                    secret=match["name"] in SECRET_NAMES,
                    doc=" ".join(comment),
                    section=section,
                )
            )
            comment = []
        elif not stripped:
            comment = []
    return found


_CODE_SPAN = re.compile(r"(`[^`]*`)")
_MARKUP = re.compile(r"([\\*_<>\[\]|])")


def _text(doc: str, names: set[str], own: str) -> str:
    """Doc text as MyST: code spans kept, Markdown's special characters escaped, other keys linked."""
    linked = re.compile(r"\b(" + "|".join(sorted((n for n in names if n != own), key=len, reverse=True)) + r")\b")
    out = []
    for part in _CODE_SPAN.split(doc):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part)
            continue
        pieces = []
        last = 0
        for match in linked.finditer(part):
            pieces.append(_MARKUP.sub(r"\\\1", part[last : match.start()]))
            pieces.append("{envvar}`" + match[1] + "`")
            last = match.end()
        pieces.append(_MARKUP.sub(r"\\\1", part[last:]))
        out.append("".join(pieces))
    return "".join(out)


def _value(value: str) -> str:
    return f"`{value}`" if value else "*empty*"


def _slug(title: str) -> str:
    return "config-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "general")


def render(table: Iterable) -> str:
    """The reference page, MyST Markdown, from rows with name, type, default_dev, default_prod, secret, doc,
    section."""
    table = list(table)
    names = {row.name for row in table}
    lines = [
        "<!-- Generated by docs/_ext/configref.py at every docs build; do not edit. -->",
        "",
        "(configuration-reference)=",
        "# Configuration reference",
        "",
        "Every key of `.env`, section by section. Each key is read from the process environment first, then",
        "from `.env`; an empty value means the default shown. *dev* and *prod* are the two values of",
        "{envvar}`APP_PROFILE`. Keys marked **secret** hold a credential: keep `.env` readable by root and the",
        "service's group only. How the file is read, and what the profiles change, is in",
        "[Configuration](../operator/configuration.md).",
        "",
    ]
    section = None
    documented = ""
    for row in table:
        if row.section != section:
            section = row.section
            lines += [f"({_slug(section)})=", f"## {section or 'General'}", ""]
        facts = [f"type `{row.type}`"] if row.type else []
        if row.default_prod is None or row.default_prod == row.default_dev:
            facts.append(f"default {_value(row.default_dev)}")
        else:
            facts.append(f"default {_value(row.default_dev)} in dev, {_value(row.default_prod)} in prod")
        if row.secret:
            facts.append("**secret**")
        if row.doc:
            doc, documented = _text(row.doc, names, row.name), row.name
        elif documented:
            doc = f"See {{envvar}}`{documented}` above."
        else:
            doc = ""
        summary = " · ".join(facts)
        lines += ["```{envvar} " + row.name, "", summary[0].upper() + summary[1:], ""]
        if doc:
            lines += [doc, ""]
        lines += ["```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_page(app=None) -> bool:
    """Write the page when its text changed. True when it was (re)written."""
    text = render(rows())
    if PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text:
        return False
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    return True


def setup(app):
    app.connect("builder-inited", write_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
