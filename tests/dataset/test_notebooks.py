"""Every notebook in notebooks/ runs top to bottom in a kernel of this Python, as a student's would: the
data folder and the variables the hub gives every server (portal/config/dataset.py), the IPython start-up files run
by the kernel config, and the sample data through the read-only account, once on the SQLite sample and
once on MariaDB. Any error fails the test, except in cells tagged `raises-exception`, which MUST fail with the
database's refusal. Committed notebooks carry no outputs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from deploy.dataset import install_kernel_config
from portal.config import dataset
from tests.live import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SERVICE_PREFIX = "/jupyter/user/nb-student/"
STATIC = "files/data/lib/cfps/static/"


def test_there_are_notebooks_for_welcome_tutorial_and_charts():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:2] == ["00_welcome", "01_database_tutorial"]
    assert len(names) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.fixture(scope="session")
def kernel_config():
    """What ./run.sh and ./test.sh do for the local spawner: IPython's kernel config in this Python's prefix."""
    target, _ = install_kernel_config()
    return target


def execute(path: Path, data_folder: Path, url: str, tmp_path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CFPS_", "DATASET_", "PYTHONPATH"))},
        "CFPS_DATA_DIR": str(data_folder),
        "PYTHONPATH": str(data_folder / "lib"),
        "CFPS_DATASET_URL": url,
        "JUPYTERHUB_SERVICE_PREFIX": SERVICE_PREFIX,
        "HOME": str(tmp_path),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
    }
    client = NotebookClient(
        nb, kernel_name="python3", timeout=180, allow_errors=False, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)  # raises CellExecutionError on the first unexpected error
    return nb


def refusals(nb) -> list[str]:
    found = []
    for cell in nb.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors, f"this cell should have been refused by the database:\n{cell.source}"
            found.append(f"{errors[0].ename}: {errors[0].evalue}")
    return found


def chart_scripts(nb) -> list[str]:
    scripts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html", "")
            if "echarts.init" in html:
                scripts += re.findall(r'"(/[^"]+\.js)"', html.split("var urls = ", 1)[1].split(";", 1)[0])
    return scripts


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_on_the_read_only_dataset(
    path, backend, data_folder, kernel_config, request, tmp_path
):
    if backend == "sqlite":
        url = f"sqlite:///{dataset.sample_path(data_folder)}?mode=ro"
        denial = "attempt to write a readonly database"
    else:
        server = request.getfixturevalue("loaded")
        url = server.url()
        denial = f"command denied to user '{server.user}'"
    nb = execute(path, data_folder, url, tmp_path)

    for refusal in refusals(nb):
        assert refusal.startswith("SQLError: 数据库拒绝了这条语句（只读账号"), refusal
        assert denial in refusal, refusal
    if path.stem == "01_database_tutorial":
        assert len(refusals(nb)) == 2  # DROP TABLE and UPDATE
    for script in chart_scripts(nb):
        assert script.startswith(SERVICE_PREFIX + STATIC), script


def test_charts_load_only_files_that_the_data_folder_serves(data_folder, kernel_config, tmp_path):
    """Every script a chart asks the browser for is in ~/data/lib/cfps/static/ (deploy/lib.sh copies them
    from npm), so charts draw without the internet."""
    static = data_folder / "lib" / "cfps" / "static"
    if not (static / "echarts.min.js").exists():
        message = "chart libraries missing: run `. deploy/lib.sh && ensure_notebook_assets` (./test.sh does)"
        pytest.skip(message)
    url = f"sqlite:///{dataset.sample_path(data_folder)}?mode=ro"
    wanted = set()
    for path in NOTEBOOKS:
        wanted |= set(chart_scripts(execute(path, data_folder, url, tmp_path)))
    names = {script.removeprefix(SERVICE_PREFIX + STATIC) for script in wanted}
    assert {"echarts.min.js", "maps/china.js", "echarts-wordcloud.min.js", "echarts-gl.min.js"} <= names
    for name in names:
        assert (static / name).stat().st_size > 10_000, name
