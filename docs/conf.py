"""Sphinx configuration of the CFPS JupyterHub documentation (MyST Markdown, the furo theme).

Build (./test.sh does, with -q): .venv/bin/python -m sphinx -W --keep-going -n -b html docs var/docs-html
Warnings are errors and references are checked (-n), so a broken link, a missing image or a key that is not
in the configuration table fails the build. Nothing is fetched while building or reading: no intersphinx,
no CDN; diagrams are Graphviz (Debian's graphviz), drawn to SVG at build time.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "CFPS JupyterHub"
author = "CFPS JupyterHub"
copyright = "CFPS JupyterHub"
# The students' and teachers' guides are Chinese, as the product is; the theme's own words follow.
language = "zh_CN"

extensions = ["myst_parser", "sphinx.ext.graphviz", "configref"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# Unlabelled code blocks are shell commands and program output: no guessing at a lexer.
highlight_language = "none"
myst_enable_extensions = ["colon_fence", "deflist"]
# [text](page.md#a-heading) works for headings down to ###; a heading that moves breaks the build.
myst_heading_anchors = 3

graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=sans-serif", "-Nfontname=sans-serif", "-Efontname=sans-serif"]

html_theme = "furo"
html_title = "CFPS JupyterHub"
html_last_updated_fmt = None
html_show_sphinx = False
html_copy_source = False
