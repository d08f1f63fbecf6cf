"""What every user's server is given (portal/config/dataset.py, hubconfig): one CFPS_DATASET_URL derived from .env,
the data folder on PYTHONPATH, and IPython's kernel config that runs the data folder's start-up files."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from deploy.dataset import install_kernel_config
from hubconfig.config import apply_config
from portal.config import Config as AppConfig
from portal.config import dataset
from portal.config.env import Env, EnvError


@pytest.fixture(autouse=True)
def _private_var_dir(private_var_dir):
    """Its own var/, with the generated secrets (DATASET_DB_PASSWORD among them), never the repo's."""


def test_embedded_default_gives_notebooks_the_sqlite_sample_read_only():
    env = dataset.notebook_environment(dataset.from_env(Env({})), Path("/home/jovyan/data"))
    assert env == {
        "CFPS_DATA_DIR": "/home/jovyan/data",
        "PYTHONPATH": "/home/jovyan/data/lib",
        "CFPS_DATASET_URL": "sqlite:////home/jovyan/data/sample/cfps_sample.sqlite3?mode=ro",
    }


def test_mysql_url_reaches_notebooks_with_defaults_filled_in_and_host_replaceable():
    values = {"DATASET_DATABASE_URL": "mysql://:S3cret%40x@db.example:3307"}
    assert (
        dataset.notebook_dataset_url(dataset.from_env(Env(values)), Path("/d"))
        == "mysql://jupyterhub:S3cret%40x@db.example:3307/cfps"
    )
    assert dataset.notebook_dataset_url(dataset.from_env(Env(values)), Path("/d"), mysql_host="172.17.0.1").startswith(
        "mysql://jupyterhub:S3cret%40x@172.17.0.1:3307/"
    )


def test_missing_password_is_generated_once_in_dev_and_required_in_prod():
    values = {"DATASET_DATABASE_URL": "mysql://jupyterhub@127.0.0.1:3306/cfps"}
    first = dataset.from_env(Env(values)).read_only.password
    assert len(first) >= 24 and dataset.from_env(Env(values)).read_only.password == first
    with pytest.raises(EnvError, match="must include the account's password in prod"):
        dataset.from_env(Env({**values, "APP_PROFILE": "prod"}))


def test_admin_url_defaults_to_the_notebooks_database_and_hosts_to_local_and_docker():
    config = dataset.from_env(
        Env({"DATASET_DATABASE_URL": "mysql://u:p@h/mydata", "DATASET_ADMIN_URL": "mysql://root:r@h:3306"})
    )
    assert config.admin.database == "mydata"
    assert config.user_hosts == ["localhost", "127.0.0.1", "172.16.0.0/255.240.0.0"]


@pytest.mark.parametrize("url", ["postgres://u:p@h/db", "mysql://u:p@h:notaport/db"])
def test_bad_dataset_url_is_refused_with_the_key_named(url):
    with pytest.raises(EnvError, match="DATASET_DATABASE_URL"):
        dataset.from_env(Env({"DATASET_DATABASE_URL": url}))


def test_local_spawner_gives_every_server_the_dataset_url():
    c = Config()
    apply_config(c, AppConfig(Env({"SPAWNER": "local"})))
    url = c.LocalHomeSpawner.environment["CFPS_DATASET_URL"]
    assert url == f"sqlite:///{dataset.local_data_dir() / 'sample' / 'cfps_sample.sqlite3'}?mode=ro"


def test_kernel_config_is_installed_once_and_runs_the_startup_files_only_with_a_data_folder(tmp_path, monkeypatch):
    target, changed = install_kernel_config(tmp_path)
    assert target == tmp_path / "etc" / "ipython" / "ipython_kernel_config.py" and changed
    assert install_kernel_config(tmp_path) == (target, False)

    def exec_files(data_dir: str | None) -> list[str]:
        if data_dir is None:
            monkeypatch.delenv("CFPS_DATA_DIR", raising=False)
        else:
            monkeypatch.setenv("CFPS_DATA_DIR", data_dir)
        c = Config()
        exec(compile(target.read_text(), str(target), "exec"), {"c": c})
        return c.InteractiveShellApp.get("exec_files", [])

    data = tmp_path / "data"
    (data / "startup").mkdir(parents=True)
    for name in ("10-later.py", "00-cfps.py"):
        (data / "startup" / name).write_text("")
    assert exec_files(str(data)) == [str(data / "startup" / "00-cfps.py"), str(data / "startup" / "10-later.py")]
    assert exec_files(None) == []
