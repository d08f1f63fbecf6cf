"""Charts without the internet: matplotlib with a Chinese font, and pyecharts drawing in JupyterLab with the
ECharts files from the data folder instead of a CDN.

How pyecharts charts reach the browser: `chart.render_notebook()` returns HTML; JupyterLab inserts it into
the page and runs its <script> (outputs of code the student ran are trusted). Our template
(templates/nb_jupyter_lab.html, chosen over pyecharts' own of the same name) loads the chart's libraries one
after another from `assets_url()` -- the user's own server, `<prefix>files/data/lib/cfps/static/`, which
serves ~/data (the data folder) -- and draws the chart once they are loaded. Each library is fetched once
per page. pyecharts' own JupyterLab template has no script tags at all and expects `chart.load_javascript()`
to have been run first, which would fetch them from assets.pyecharts.org.
"""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The data folder is ~/data in every home (userspace/datafolder.py); Jupyter serves home files under files/.
ASSETS_PATH = "files/data/lib/cfps/static/"

# Fonts with Chinese glyphs, best first; the first one installed wins (fonts-noto-cjk on Debian).
CJK_FONTS = [
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
]


def assets_url() -> str:
    """Where the browser loads ECharts from: CFPS_ECHARTS_URL if set, else this user's server."""
    if url := os.environ.get("CFPS_ECHARTS_URL"):
        return url if url.endswith("/") else url + "/"
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return (prefix if prefix.endswith("/") else prefix + "/") + ASSETS_PATH


def script_urls(chart) -> list[str]:
    """The scripts a chart needs, in order (ECharts first, then extensions and maps)."""
    from pyecharts.datasets import EXTRA, FILENAMES
    from pyecharts.globals import CurrentConfig

    host = getattr(chart, "js_host", "") or CurrentConfig.ONLINE_HOST
    urls = []
    for dep in chart.js_dependencies.items:
        if dep in FILENAMES:
            name, ext = FILENAMES[dep]
            if ext == "js":
                urls.append(f"{host}{name}.{ext}")
        elif dep.startswith(("http://", "https://")):
            urls.append(dep)  # an online-only extension (e.g. a web map API): needs the internet
        else:
            for base, files in EXTRA.items():
                if dep in files and files[dep][1] == "js":
                    urls.append(f"{base}{files[dep][0]}.js")
                    break
    return urls


def setup_pyecharts() -> str:
    """Make `chart.render_notebook()` draw in JupyterLab from local files. Returns the assets URL."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader
    from pyecharts.globals import CurrentConfig, NotebookType

    CurrentConfig.NOTEBOOK_TYPE = NotebookType.JUPYTER_LAB
    CurrentConfig.ONLINE_HOST = assets_url()
    original = CurrentConfig.GLOBAL_ENV
    if not getattr(original, "cfps", False):
        env = Environment(
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            loader=ChoiceLoader([FileSystemLoader(str(TEMPLATES)), original.loader]),
        )
        env.globals["cfps_script_urls"] = script_urls
        env.cfps = True
        CurrentConfig.GLOBAL_ENV = env
    return CurrentConfig.ONLINE_HOST


def setup_matplotlib() -> str | None:
    """Use an installed Chinese font for matplotlib (and a plain minus sign, which every font has).
    Returns the font's name, or None when no Chinese font is installed (Chinese then shows as boxes)."""
    from matplotlib import font_manager, rcParams

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [name for name in CJK_FONTS if name in installed]
    rcParams["axes.unicode_minus"] = False
    if not found:
        return None
    rcParams["font.family"] = "sans-serif"
    rcParams["font.sans-serif"] = [found[0], *[f for f in rcParams["font.sans-serif"] if f != found[0]]]
    return found[0]
