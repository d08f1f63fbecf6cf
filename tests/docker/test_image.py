"""The notebook image that `manage.py build_image` makes offline, and what it shares with the hub and the
Dockerfile (singleuser/image/)."""

from __future__ import annotations

import json
import re
import time

import jupyterhub

from hubconfig.config import LAB_CONFIG
from portal.config.env import BASE_DIR
from tests.docker.conftest import RUN, manage_in_repo
from tests.live import free_port

IMAGE_REQUIREMENTS = BASE_DIR / "singleuser" / "image" / "requirements.txt"
PROBE = """
import importlib.metadata as md, json, os, pathlib, sys
import matplotlib, numpy, pandas, pyecharts, pymysql, sqlalchemy
overrides = pathlib.Path(sys.prefix, "share/jupyter/lab/settings/overrides.json")
lab_config = pathlib.Path(sys.prefix, "etc/jupyter/jupyter_lab_config.json")
print(json.dumps({
    "uid": os.getuid(),
    "home": os.path.expanduser("~"),
    "jupyterhub": md.version("jupyterhub"),
    "language_pack": md.version("jupyterlab-language-pack-zh-CN"),
    "overrides": json.loads(overrides.read_text()),
    "lab_config": json.loads(lab_config.read_text()),
}))
"""


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_image_requirements_pin_the_hubs_jupyterhub_and_jupyterlab():
    hub, image = pins(BASE_DIR / "requirements.txt"), pins(IMAGE_REQUIREMENTS)
    for package in ("jupyterhub", "jupyterlab", "jupyterlab-language-pack-zh-cn"):
        assert image[package] == hub[package], f"{package}: image {image[package]}, hub {hub[package]}"
    for package in ("pandas", "numpy", "matplotlib", "pyecharts", "sqlalchemy", "pymysql"):
        assert package in image, f"{package} is not pinned in {IMAGE_REQUIREMENTS}"


def test_dockerfile_installs_the_same_requirements_from_a_date_pinned_docker_stacks_image():
    dockerfile = (BASE_DIR / "singleuser" / "image" / "Dockerfile").read_text()
    assert re.search(r"quay\.io/jupyter/base-notebook:\d{4}-\d{2}-\d{2}\b", dockerfile)
    assert "singleuser/image/requirements.txt" in dockerfile
    assert "hubconfig/lab_settings/overrides.json" in dockerfile
    assert "COPY hubconfig/lab_settings/jupyter_lab_config.json ${CONDA_DIR}/etc/jupyter/jupyter_lab_config.json" in (
        dockerfile
    )
    assert 'CMD ["jupyterhub-singleuser"]' in dockerfile and "USER ${NB_UID}" in dockerfile


def test_image_runs_as_jovyan_with_the_hubs_jupyterhub_and_jupyterlab_in_chinese(docker_client, notebook_image):
    output = docker_client.containers.run(
        notebook_image, ["python", "-c", PROBE], network_mode="none", remove=True, name=f"cfps-test-{RUN}-probe"
    )
    facts = json.loads(output.decode().strip().splitlines()[-1])
    assert facts["uid"] == 1000 and facts["home"] == "/home/jovyan"
    assert facts["jupyterhub"] == jupyterhub.__version__
    assert facts["language_pack"] == pins(IMAGE_REQUIREMENTS)["jupyterlab-language-pack-zh-cn"]
    lab_settings = json.loads((BASE_DIR / "hubconfig" / "lab_settings" / "overrides.json").read_text())
    assert facts["overrides"] == lab_settings
    assert facts["lab_config"] == json.loads(LAB_CONFIG.read_text())
    config = docker_client.images.get(notebook_image).attrs["Config"]
    assert config["User"] == "jovyan" and config["WorkingDir"] == "/home/jovyan"
    assert config["Cmd"] == ["jupyterhub-singleuser"]


def test_building_again_with_unchanged_inputs_takes_seconds(notebook_image):
    started = time.monotonic()
    result = manage_in_repo("build_image")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "nothing to build" in result.stdout, result.stdout
    assert elapsed < 20, f"an unchanged re-run took {elapsed:.1f} s"


def test_dry_run_for_a_new_image_name_says_what_it_would_build_and_builds_nothing(docker_client, notebook_image):
    name = f"cfps-test-{RUN}-dry:latest"
    result = manage_in_repo("build_image", "--dry-run", DOCKER_IMAGE=name)
    assert result.returncode == 0, result.stderr
    assert f"would build {name}" in result.stdout, result.stdout
    assert not docker_client.images.list(name=f"cfps-test-{RUN}-dry")


def test_unreachable_mirror_stops_the_build_with_one_line(notebook_image):
    mirror = f"http://127.0.0.1:{free_port()}/debian"  # nothing listens there
    result = manage_in_repo(
        "build_image", "--force", DOCKER_IMAGE=f"cfps-test-{RUN}-nomirror:latest", DEBIAN_MIRROR=mirror
    )
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and f"DEBIAN_MIRROR {mirror} is unreachable" in message, message


def test_build_without_a_docker_engine_stops_with_one_line():
    result = manage_in_repo("build_image", DOCKER_HOST=f"unix:///nonexistent/{RUN}/docker.sock")
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Docker engine does not answer" in message, message


def test_the_hubs_server_command_runs_the_images_singleuser_without_the_iri_grammar_and_the_hubs_modules(
    docker_client, notebook_image
):
    from hubconfig.docker import SINGLEUSER
    from tests.hubconfig.test_singleuser_entry import HUB_ONLY

    def imported(command: list[str]) -> tuple[str, set[str]]:
        output = docker_client.containers.run(
            notebook_image, command, environment={"PYTHONPROFILEIMPORTTIME": "1"}, network_mode="none",
            remove=True, stdout=True, stderr=True, name=f"cfps-test-{RUN}-{command[0]}",
        ).decode()  # fmt: skip
        lines = output.splitlines()
        names = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
        return "\n".join(line for line in lines if not line.startswith("import time:")), names

    version, modules = imported([*SINGLEUSER, "--version"])
    assert version.strip() == jupyterhub.__version__ and "jupyterhub.singleuser" in modules
    assert "rfc3987_syntax.syntax_helpers" not in modules and "lark" not in modules
    assert not HUB_ONLY & modules, HUB_ONLY & modules  # singleuser/image/cfps_singleuser.py
    # ...which the image's own command loads (1 s and 17 MB per server; the hub's handlers, ORM and Alembic).
    plain = imported(["jupyterhub-singleuser", "--version"])[1]
    assert "rfc3987_syntax.syntax_helpers" in plain and HUB_ONLY <= plain
