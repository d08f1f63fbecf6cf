"""A hand-in's notebook, shown to staff read-only in the browser: rendered by nbconvert, nothing runs.

A student's notebook is the student's own content: its Markdown, HTML outputs and raw cells may carry
`<script>`, `onerror=` and the like, aimed at a teacher's browser on the portal's origin. Three walls:
- No code runs on the server: nbconvert only renders what the notebook holds (no kernel, no ExecutePreprocessor).
- The HTML has no script at all: our nbconvert template (templates/course/nbconvert/cfps_preview/) leaves
  out nbconvert's own scripts (require.js, MathJax, Mermaid, widgets) and JavaScript outputs, and every piece
  of HTML the notebook brings (Markdown, HTML and Markdown outputs, raw cells, SVG) goes through `clean_html`:
  bleach with a list of harmless tags and attributes (tables, headings, images from data: URLs, styles
  through a CSS sanitizer); anything else is shown as text. SVG is shown as an image (`<img src=data:...>`),
  where its scripts never run.
- The page is served with `Content-Security-Policy: sandbox; default-src 'none'; img-src data:; style-src
  'unsafe-inline'` (PREVIEW_CSP): the browser gives it an origin of its own (not the portal's: no cookies, no
  requests as staff), runs no script, submits no form, opens no window and loads nothing from anywhere.
  That holds even if the sanitizer missed something.
"""

from __future__ import annotations

import functools
from pathlib import Path

import bleach
from bleach.css_sanitizer import CSSSanitizer
from django.conf import settings
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

TEMPLATES = Path(settings.BASE_DIR) / "templates" / "course" / "nbconvert"
PREVIEW_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
MAX_NOTEBOOK = 64 * 1024**2  # bytes: larger notebooks are not rendered (the zip has them)

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details", "div",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "style", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "id", "title", "style", "align", "lang", "dir"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "table": {"border"},
    "style": {"type"},
}
PROTOCOLS = {"http", "https", "mailto", "data"}


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    if name not in ATTRIBUTES["*"] and name not in ATTRIBUTES.get(tag, ()):
        return False
    if tag == "img" and name == "src":
        return value.strip().lower().startswith("data:image/")  # never a request, to the portal or elsewhere
    if tag == "a" and name == "href":
        return value.strip().lower().startswith(("http:", "https:", "mailto:", "#"))
    return True


@functools.cache
def _cleaner() -> bleach.Cleaner:
    return bleach.Cleaner(
        tags=TAGS, attributes=_attribute_allowed, protocols=PROTOCOLS, strip=False, strip_comments=True,
        css_sanitizer=CSSSanitizer(),
    )  # fmt: skip


def clean_html(element) -> str:
    """HTML a notebook brings, with only harmless tags and attributes left (the rest shown as text)."""
    text = element.decode() if isinstance(element, bytes) else str(element)
    return _cleaner().clean(text)


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="cfps_preview",
        extra_template_basedirs=[str(TEMPLATES)],
        sanitize_html=True,  # every piece of the notebook's HTML through clean_html
        skip_svg_encoding=False,  # SVG as <img src=data:...>
        filters={"clean_html": clean_html},
        exclude_anchor_links=True,
    )


class PreviewError(Exception):
    """The notebook cannot be shown; the message says why, for staff."""


def render(path: Path, *, title: str, details: str) -> str:
    """The notebook at `path` as a page of HTML with no script (module rules). `title` and `details` head it."""
    import nbformat

    try:
        if path.stat().st_size > MAX_NOTEBOOK:
            raise PreviewError(
                _("The notebook is larger than %(size)d MB: download it instead.") % {"size": MAX_NOTEBOOK // 1024**2}
            )
        with open(path, encoding="utf-8") as handle:
            notebook = nbformat.read(handle, as_version=4)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        message = _("This is not a notebook that can be read (%(error)s).") % {"error": type(exc).__name__}
        raise PreviewError(message) from None
    language = (get_language() or "zh").split("-")[0]
    resources = {
        "metadata": {"name": path.name},
        "cfps": {
            "title": title,
            "details": details,
            "javascript": _("(JavaScript output, not run here)"),
            "widget": _("(interactive widget, not shown here)"),
        },
    }
    exporter = _exporter()
    exporter.language_code = language if language in ("zh", "en") else "en"
    try:
        html, _resources = exporter.from_notebook_node(notebook, resources=resources)
    except Exception as exc:  # noqa: BLE001 - a student's notebook can break nbconvert in many ways
        message = _("nbconvert could not render this notebook (%(error)s).") % {"error": type(exc).__name__}
        raise PreviewError(message) from None
    return html


def banner_details(submission, file: str) -> str:
    when = timezone.localtime(submission.requested_at).strftime("%Y-%m-%d %H:%M:%S")
    return _("%(file)s · handed in at %(time)s · read-only, nothing runs") % {"file": file, "time": when}
