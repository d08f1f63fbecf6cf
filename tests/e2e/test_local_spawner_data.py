"""The embedded local spawner follows the same data-folder contract as a container (userspace/datafolder.py):
the hub fills the data folder at its first spawn, a new home gets its own copy of the example notebooks,
and the server's environment names the data folder and its helpers."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e import flows


def server_environment(username: str) -> dict[str, str]:
    """The environment of the user's jupyterhub-singleuser process (a local process with this spawner)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        environ = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        if environ.get("JUPYTERHUB_USER") == username and "JUPYTERHUB_SERVICE_URL" in environ:
            return environ
    return {}


def test_local_server_gets_the_data_folder_its_helpers_and_a_copy_of_the_example_notebooks(stack, client, student):
    flows.wait_for_lab(stack, client, student, client.get("/jupyter/"))
    home = Path(stack.env["CFPS_VAR_DIR"]) / "users" / student
    data = Path(stack.env["CFPS_VAR_DIR"]) / "shared" / "data"
    for name in ("notebooks", "lib", "startup"):
        assert (data / name).is_dir(), flows.explain(stack, f"the hub did not fill {data / name}")
    assert sorted(p.name for p in (home / "notebooks").iterdir()) == sorted(
        p.name for p in (data / "notebooks").iterdir()
    )
    environ = server_environment(student)
    assert environ.get("CFPS_DATA_DIR") == str(home / "data"), flows.explain(stack, f"environment: {environ}")
    assert environ["PYTHONPATH"].split(os.pathsep)[0] == str(home / "data" / "lib")
    assert environ.get("CFPS_DATASET_URL", "").startswith("sqlite:///"), environ


def test_the_server_ignores_jupyter_configuration_from_the_students_home(stack, client, student):
    """Issue 20: a student published a script page from their own server with `extra_static_paths` in
    ~/.jupyter/jupyter_server_config.py (the page then ran with the rights of whoever opened it). The server
    reads no configuration from the home now; the data folder's helpers are not configuration and stay."""
    home = Path(stack.env["CFPS_VAR_DIR"]) / "users" / student
    (home / ".jupyter").mkdir(parents=True)
    (home / "site").mkdir()
    (home / "site" / "homework.html").write_text("<script>alert('the student's page')</script>")
    (home / ".jupyter" / "jupyter_server_config.py").write_text(
        f"c.ServerApp.extra_static_paths = [{str(home / 'site')!r}]\n"
    )
    flows.wait_for_lab(stack, client, student, client.get("/jupyter/"))
    page = client.get(f"/jupyter/user/{student}/static/homework.html")
    assert page.status_code == 404, flows.explain(stack, f"the student's static page was served: {page.status_code}")
    environ = server_environment(student)
    assert environ.get("JUPYTERHUB_DISABLE_USER_CONFIG") == "1", environ
    assert environ["PYTHONPATH"].split(os.pathsep)[0] == str(home / "data" / "lib")  # the helpers, still
