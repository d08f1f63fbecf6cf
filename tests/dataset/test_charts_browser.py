"""A student in a real browser, through the whole stack with the embedded local spawner: opens chart notebooks
from ~/notebooks, runs every cell, and every chart draws (a <canvas> in each chart container). The chart
libraries come from the student's own server (~/data/lib/cfps/static/): the page never asks any host but
127.0.0.1 (the new_context fixture checks every request), so charts work without the internet."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from deploy.dataset import install_kernel_config
from tests.browser.test_jupyterlab_browser import open_jupyterlab_from_home, sign_up_from_home, step
from tests.live import REPO, Stack

RUN_TIMEOUT = 120_000
NOTEBOOKS = ("04_maps_and_special", "05_3d")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not (REPO / "singleuser" / "notebook" / "lib" / "cfps" / "static" / "echarts.min.js").exists():
        message = "chart libraries missing: run `. deploy/lib.sh && ensure_notebook_assets` (./test.sh does)"
        pytest.skip(message)
    install_kernel_config()  # as ./run.sh does for .venv
    stack = Stack(tmp_path_factory.mktemp("stack"), proxy="python", extra_env={"SPAWNER": "local"})
    stack.start()
    try:
        stack.manage("load_sample_data")  # as ./run.sh does for the embedded default
        yield stack
    finally:
        stack.stop()


def charts_in(name: str) -> int:
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    return sum(cell.source.count(".render_notebook()") for cell in nb.cells if cell.cell_type == "code")


def run_all(page, notebook) -> None:
    """Run → Run All Cells on this notebook; again if no cell started (a click before the notebook was the
    current widget does nothing)."""
    first_prompt = notebook.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(3):
        notebook.locator(".jp-Cell").first.click()  # makes this notebook the current widget
        page.locator("#jp-menu-panel .lm-MenuBar-item", has_text="运行").click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        try:
            expect(first_prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=10_000)
            return
        except AssertionError:
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells did not start any cell")


def test_chart_notebooks_draw_every_chart_from_the_users_own_server(stack, new_context, screenshot):
    username = "chart-student"
    page = new_context(locale="zh-CN").new_page()
    sign_up_from_home(stack, page, username)
    open_jupyterlab_from_home(stack, page, username)
    assets = []
    page.on("response", lambda r: "/files/data/lib/cfps/static/" in r.url and assets.append((r.url, r.status)))

    for name in NOTEBOOKS:
        expected = charts_in(name)
        with step(stack, f"opening ~/notebooks/{name}.ipynb"):
            # A workspace of its own (reset): only this notebook open, so every locator below means it.
            page.goto(stack.url(f"/jupyter/user/{username}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb?reset"))
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
            expect(notebook).to_be_visible(timeout=RUN_TIMEOUT)
            expect(
                page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")
            ).to_have_attribute("data-status", "idle", timeout=RUN_TIMEOUT)
        with step(stack, f"running every cell of {name} (运行 → 运行全部单元格)"):
            run_all(page, notebook)
        with step(stack, f"waiting for {expected} charts with a canvas each in {name}"):
            containers = notebook.locator(".chart-container")
            expect(containers).to_have_count(expected, timeout=RUN_TIMEOUT)
            expect(containers.filter(has=page.locator("canvas"))).to_have_count(expected, timeout=RUN_TIMEOUT)
            expect(notebook.get_by_text("图表所需的脚本加载失败")).to_have_count(0)
            expect(
                notebook.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            ).to_have_count(0)
        screenshot(page, f"{name}")

    served = {url.rsplit("/static/", 1)[1]: status for url, status in assets}
    assert {"echarts.min.js", "maps/china.js", "echarts-wordcloud.min.js", "echarts-gl.min.js"} <= set(served)
    assert set(served.values()) <= {200, 304}, served  # 304: the browser had it cached from the first notebook
