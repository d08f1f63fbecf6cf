"""What the worker writes down for people (a job's message, a student's result, a hand-in's reason) is read
later, in Chinese or in English: it is stored as its English source text and values (`note`) and translated
when it is shown (`show`; the models' `shown_message`). Text stored any other way is shown as it is."""

from __future__ import annotations

import json

from django.utils.translation import gettext
from django.utils.translation import gettext_noop as N_  # noqa: F401 (marks the source texts for makemessages)

_MARK = '{"msgid": '


def note(msgid: str, **params) -> str:
    return json.dumps({"msgid": msgid, "params": params}, ensure_ascii=False)


def show(stored: str) -> str:
    if not stored or not stored.startswith(_MARK):
        return stored
    try:
        data = json.loads(stored)
        text = gettext(data["msgid"])
        return text % data["params"] if data.get("params") else text
    except (ValueError, KeyError, TypeError):
        return stored
