"""The docs in docs/: they build with warnings as errors and checked references, load nothing from the network,
show only images that exist and every screenshot the browser tests take, and the configuration reference has every
key. The builds run Sphinx in a subprocess, as ./test.sh does (a few seconds each)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
DOCS = REPO / "docs"
IMAGES = DOCS / "images"
# ![alt](path), and the {image} / {figure} directives in ``` or ::: fences.
IMAGE_REFERENCE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|^[`:]{3,}\{(?:image|figure)\}\s+(\S+)", re.MULTILINE)
# A tag that makes the browser fetch something (not a plain link to another site).
REMOTE_ASSET = re.compile(
    r"<(?:script|img|link|iframe|source|video|audio)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I
)


def configref():
    """docs/_ext/configref.py, the extension the build loads (docs/conf.py puts docs/_ext on the path)."""
    if "configref" not in sys.modules:
        spec = importlib.util.spec_from_file_location("configref", DOCS / "_ext" / "configref.py")
        module = sys.modules["configref"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["configref"]


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]
    command += ["-d", str(out / ".doctrees"), str(source), str(out / "html")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def markdown_pages(root: Path = DOCS) -> list[Path]:
    return [path for path in root.rglob("*.md") if "_build" not in path.parts]


def test_docs_build_with_warnings_as_errors_and_load_nothing_from_the_network(tmp_path):
    if shutil.which("dot") is None:
        pytest.fail("Graphviz's dot is missing (apt-get install graphviz; ./test.sh installs it)")
    result = sphinx_build(DOCS, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    pages = list((tmp_path / "html").rglob("*.html"))
    assert len(pages) >= len(markdown_pages()), sorted(p.name for p in pages)
    for page in pages:
        remote = REMOTE_ASSET.findall(page.read_text(encoding="utf-8"))
        assert not remote, f"{page.relative_to(tmp_path)} loads {remote}"
    # The diagram is drawn at build time, into the page (no Mermaid from a CDN in the reader's browser).
    assert "<svg" in (tmp_path / "html" / "architecture.html").read_text(encoding="utf-8") or list(
        (tmp_path / "html" / "_images").glob("graphviz-*.svg")
    )


def test_a_page_naming_an_unknown_key_or_a_missing_page_fails_the_build(tmp_path):
    """The -n -W gate works: a typo in a key or a link stops the build with its name."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "images"))
    shutil.copy(REPO / ".env.example", tmp_path / ".env.example")  # configref reads it next to docs/
    for page in markdown_pages(source):  # the images are left out of the copy: drop their references
        text = IMAGE_REFERENCE.sub("", page.read_text(encoding="utf-8"))
        page.write_text(re.sub(r"^:(alt|width):.*\n", "", text, flags=re.M), encoding="utf-8")
    with (source / "development.md").open("a", encoding="utf-8") as page:
        page.write("\nSee {envvar}`MEM_LIMT` and [the deploy page](operator/deplo.md).\n")
    result = sphinx_build(source, tmp_path / "out")
    assert result.returncode != 0
    assert "MEM_LIMT" in result.stderr and "operator/deplo.md" in result.stderr, result.stderr[-3000:]


def test_every_image_a_page_shows_exists_and_every_screenshot_is_shown():
    shown = set()
    for page in markdown_pages():
        for match in IMAGE_REFERENCE.finditer(page.read_text(encoding="utf-8")):
            target = (page.parent / (match[1] or match[2])).resolve()
            assert target.is_file(), f"{page.relative_to(REPO)} shows {match[1] or match[2]}, which does not exist"
            shown.add(target)
    unused = [path.name for path in IMAGES.glob("*.png") if path.resolve() not in shown]
    assert not unused, f"docs/images/ holds screenshots no page shows: {unused}"


def test_the_configuration_reference_has_every_key_of_the_table_in_its_section():
    from portal.config import table

    ref = configref()
    rows = ref.rows()
    assert [row.name for row in rows] == [key.name for key in table.KEYS]
    page = ref.render(rows)
    for key in table.KEYS:
        assert f"```{{envvar}} {key.name}\n" in page
    mem = next(row for row in rows if row.name == "MEM_LIMIT")
    assert mem.default_dev == "2G" and "Memory per container" in mem.doc
    assert mem.section.startswith("Users' containers")
    assert next(row for row in rows if row.name == "HUB_CLIENT_SECRET").secret
    proxy = next(row for row in rows if row.name == "PROXY")
    assert (proxy.default_dev, proxy.default_prod) == ("python", "node")


def test_a_declared_table_renders_prod_defaults_secrets_links_and_escapes():
    """What the page makes of rows: prod defaults, secrets, links between keys, escaped markup."""
    ref = configref()
    rows = [
        SimpleNamespace(
            name="GUNICORN_WORKERS",
            type="int",
            default_dev="1",
            default_prod="2",
            secret=False,
            doc="Worker processes; with PASSWORD_CHECKS_AT_ONCE, see <name>_x and `a*b`.",
            section="Gunicorn",
        ),
        SimpleNamespace(
            name="PASSWORD_CHECKS_AT_ONCE",
            type="int",
            default_dev="",
            default_prod=None,
            secret=True,
            doc="Checks at once.",
            section="Gunicorn",
        ),
    ]
    page = ref.render(rows)
    assert "(config-gunicorn)=\n## Gunicorn\n" in page
    assert "Type `int` · default `1` in dev, `2` in prod" in page
    assert "Type `int` · default *empty* · **secret**" in page
    # Another key is a link; Markdown's specials outside code are escaped; code spans stay as written.
    assert "with {envvar}`PASSWORD_CHECKS_AT_ONCE`, see \\<name\\>\\_x and `a*b`." in page


def test_readme_is_a_short_door_to_the_docs():
    """README.md keeps what a newcomer needs first; everything else lives in docs/, which it links to."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) < 150, f"README.md has {len(lines)} lines: move the detail into docs/"
    fenced = False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            assert len(line) <= 200, f"README.md line {number} has {len(line)} characters"
    opening = text[text.index("```") : text.index("```", text.index("```") + 3)]
    assert "./run.sh" in opening and "./test.sh" in opening, "the two commands open the README"
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
