"""Generated secrets (portal/config/env.py): an explicit step makes them, and reading the settings or the hub's
config never writes a file; without the step they stop in one line that names the file and the step."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portal.config.env import GENERATED_SECRETS, PREPARE_HINT, Env, EnvError, generate_secrets
from tests.live import REPO, prepare_secrets


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(folder: Path) -> dict[str, tuple[str, int, int, int]]:
    return {p.name: (p.read_text(), mode(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def clean_env(var: Path, **values: str) -> dict[str, str]:
    """No .env, no settings module or database from the calling shell, var/ in `var`."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    return {**env, "CFPS_ENV_FILE": "/dev/null", "CFPS_VAR_DIR": str(var), "APP_PROFILE": "dev", **values}


def test_the_step_makes_each_secret_once_owner_only_and_a_second_run_changes_nothing(tmp_path):
    var = tmp_path / "var"
    made = generate_secrets(var_dir=var, env=Env({}))
    folder = var / "secrets"
    assert made == list(GENERATED_SECRETS)
    assert sorted(p.name for p in folder.iterdir()) == sorted(GENERATED_SECRETS)  # no temporary file left
    assert mode(folder) == 0o700 and all(mode(p) == 0o600 for p in folder.iterdir())
    assert all(p.read_text() for p in folder.iterdir())
    assert len(bytes.fromhex((folder / "JUPYTERHUB_CRYPT_KEY").read_text())) == 32
    assert (folder / "OIDC_RSA_PRIVATE_KEY_PEM").read_text().startswith("-----BEGIN PRIVATE KEY-----")

    before = snapshot(folder)
    assert generate_secrets(var_dir=var, env=Env({})) == []
    assert snapshot(folder) == before  # same files, same contents: nothing rewritten


def test_the_step_never_overwrites_and_tightens_an_open_folder(tmp_path):
    folder = tmp_path / "var" / "secrets"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    (folder / "HUB_CLIENT_SECRET").write_text("kept-from-an-earlier-run")
    made = generate_secrets(var_dir=tmp_path / "var", env=Env({}))
    assert "HUB_CLIENT_SECRET" not in made
    assert (folder / "HUB_CLIENT_SECRET").read_text() == "kept-from-an-earlier-run"
    assert mode(folder) == 0o700


def test_the_step_makes_nothing_that_env_gives_and_nothing_in_prod(tmp_path):
    given = Env({"HUB_CLIENT_SECRET": "from-env", "OIDC_RSA_PRIVATE_KEY_FILE": "/etc/cfps/oidc.pem"})
    made = generate_secrets(var_dir=tmp_path / "dev", env=given)
    assert set(made) == set(GENERATED_SECRETS) - {"HUB_CLIENT_SECRET", "OIDC_RSA_PRIVATE_KEY_PEM"}
    assert generate_secrets(var_dir=tmp_path / "prod", env=Env({"APP_PROFILE": "prod"})) == []
    assert not (tmp_path / "prod").exists()


def test_reading_a_secret_the_step_has_not_made_names_the_file_and_the_step(tmp_path, monkeypatch):
    monkeypatch.setenv("CFPS_VAR_DIR", str(tmp_path))
    with pytest.raises(EnvError) as missing:
        Env({}).secret("PROXY_SECRET")
    assert str(missing.value) == f"{tmp_path / 'secrets' / 'PROXY_SECRET'} is missing: {PREPARE_HINT}"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EnvError, match="PROXY_SECRET must be set in .env"):  # prod: unchanged
        Env({}).secret("PROXY_SECRET", generate=False)


@pytest.mark.parametrize("profile", ["dev", "test"])
def test_importing_the_settings_with_an_empty_var_dir_writes_nothing_and_stops_in_one_line(tmp_path, profile):
    var = tmp_path / "var"
    var.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", f"import portal.settings.{profile}"],
        cwd=REPO,
        env=clean_env(var),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(var / "secrets") in lines[0] and PREPARE_HINT in lines[0], lines[0]
    assert list(var.iterdir()) == []


def test_a_fresh_var_dir_after_the_step_runs_the_portal_and_the_hub(tmp_path):
    var = tmp_path / "var"
    env = clean_env(var, DATABASE_URL=f"sqlite:///{tmp_path}/portal.sqlite3")
    cli = subprocess.run(
        [sys.executable, "-m", "portal.config.env", "prepare"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert cli.returncode == 0 and "HUB_CLIENT_SECRET" in cli.stdout, cli.stderr
    prepare_secrets(env)  # again, as every ./run.sh does: nothing new
    assert sorted(p.name for p in (var / "secrets").iterdir()) == sorted(GENERATED_SECRETS)
    probe = (
        "from django.conf import settings; from traitlets.config import Config; from hubconfig.config import"
        " apply_config; from portal.config import load; c = Config(); apply_config(c, load().replace(SPAWNER='local'));"
        " print(settings.HUB_CLIENT_SECRET == c.PortalOAuthenticator.client_secret, len(settings.SECRET_KEY))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1].split()  # after shell's "N objects imported" line
    assert last == ["True", str(len((var / "secrets" / "SECRET_KEY").read_text()))]
