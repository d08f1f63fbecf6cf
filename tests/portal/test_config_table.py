"""The one table of configuration keys (portal/config/table.py): every key read is declared there once, the
committed .env.example is what the table makes, an unknown key in .env stops start-up naming the nearest known
one, and only portal.config reads the process environment for a product key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from portal.config import Config, table
from portal.config.env import BASE_DIR, Env, EnvError

# Modules of the project (not tests, not what runs inside students' containers), as the import contracts see them.
PRODUCT = ["portal", "accounts", "staff", "deploy", "hubconfig", "userspace", "supervise", "manage.py", "run.sh"]
READ = re.compile(r"\benv\.(?:get|int|bool|list|float|secret|given)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def product_files():
    for name in PRODUCT:
        path = BASE_DIR / name
        if path.is_file():
            yield path
        else:
            yield from (p for p in path.rglob("*.py") if "migrations" not in p.parts)


def test_the_committed_env_example_is_what_the_table_makes():
    committed = (BASE_DIR / ".env.example").read_text(encoding="utf-8")
    assert committed == table.render_env_example(), (
        ".env.example differs from portal/config/table.py: run `.venv/bin/python -m portal.config example > .env.example`"
    )


def test_every_key_the_code_reads_is_declared_and_every_declared_key_is_read():
    read = {match for path in product_files() for match in READ.findall(path.read_text(encoding="utf-8"))}
    assert read - set(table.BY_NAME) == set()
    # A declared key nobody reads would be a promise the product does not keep. Sections read some keys through
    # helpers (rate(), _at_least(), _volume_name()), so look for the name as a string anywhere in the product.
    text = "\n".join(path.read_text(encoding="utf-8") for path in product_files() if path.name != "table.py")
    unread = [name for name in table.BY_NAME if f'"{name}"' not in text]
    assert unread == []


def test_each_key_is_declared_once_with_a_type_a_section_and_a_doc():
    for key in table.KEYS:
        assert key.section in table.SECTIONS and key.type in table.TYPES and key.doc.strip(), key
        assert set(key.default) <= {"dev", "prod"} if isinstance(key.default, dict) else True


def test_asking_for_an_undeclared_key_is_a_programming_error():
    with pytest.raises(KeyError):
        Env({}).get("NOT_A_KEY")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("MEM_LIMT=4G", "MEM_LIMT in .env is not a known key (did you mean MEM_LIMIT?)"),
        ("USER_SUBDOMIANS=true", "did you mean USER_SUBDOMAINS?"),
        ("ZZZ=1", "ZZZ in .env is not a known key; .env.example lists them all"),
        ("SIGNUP_RATE_LIMIT=5/m", "SIGNUP_RATE_LIMIT is no longer read: remove it from .env (see SIGNUP_CODE_FAILURE"),
    ],
)
def test_an_unknown_key_in_env_is_reported_with_the_nearest_known_one(line, message):
    key, value = line.split("=")
    with pytest.raises(EnvError) as caught:
        Env({key: value})
    assert message in str(caught.value)


def test_the_portal_and_the_hub_stop_in_one_line_on_an_unknown_key(tmp_path, private_var_dir):
    env_file = tmp_path / ".env"
    env_file.write_text("MEM_LIMT=4G\n", encoding="utf-8")
    import os

    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env = {**base, "CFPS_ENV_FILE": str(env_file), "CFPS_VAR_DIR": str(private_var_dir)}
    portal = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    hub = subprocess.run(
        [sys.executable, "-c", "import runpy, traitlets.config as t; runpy.run_path('hubconfig/jupyterhub_config.py', {'c': t.Config()})"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    for result in (portal, hub):
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert lines and "did you mean MEM_LIMIT?" in lines[-1] and "Traceback" not in result.stderr, result.stderr


def test_defaults_come_from_the_table_per_profile():
    assert Config(Env({})).hub.proxy == "python" and Config(Env({"APP_PROFILE": "prod"})).hub.proxy == "node"
    assert Config(Env({})).containers.mem_limit == 2 * 1024**3
    assert Env({"MEM_LIMIT": "512M"}).get("MEM_LIMIT") == "512M"


def test_secrets_are_listed_once_with_who_needs_them():
    assert table.secrets_needed_by("portal") == ["SECRET_KEY", "HUB_CLIENT_SECRET", "HUB_API_TOKEN", "PROXY_SECRET"]
    assert set(table.secrets_needed_by("hub")) == {
        "HUB_CLIENT_SECRET", "HUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN", "PROXY_SECRET", "JUPYTERHUB_CRYPT_KEY",
    }  # fmt: skip
    from portal.config.env import GENERATED_SECRETS

    generated = {key.name for key in table.KEYS if key.generated}
    assert generated == set(GENERATED_SECRETS) - {"OIDC_RSA_PRIVATE_KEY_PEM"}


ALLOWED_ENVIRON = {
    # Django's own switch, set from APP_PROFILE (portal.settings.module_for_profile)
    "manage.py": "DJANGO_SETTINGS_MODULE",
    "portal/wsgi.py": "DJANGO_SETTINGS_MODULE",
    # where systemd-analyze lives, not a product key
    "deploy/management/commands/gen_systemd.py": "PATH",
    # hands the crypt key to JupyterHub, which reads it only from its environment
    "hubconfig/jupyterhub_config.py": "process_environment",
}


def test_only_portal_config_reads_the_process_environment_for_a_product_key():
    offenders = []
    for path in product_files():
        relative = path.relative_to(BASE_DIR).as_posix()
        if relative.startswith("portal/config/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"os\.environ|getenv\(", line) and ALLOWED_ENVIRON.get(relative, "\0") not in line:
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_importing_the_hub_config_loads_no_django():
    code = "import sys, hubconfig.config; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_nothing_but_portal_config_calls_a_section_builder():
    """The typed Config is what is handed on: outside portal/config, no product module parses .env again."""
    builders = re.compile(r"\b(?:topology|containers|dataset|mail|swarm|ct)\.from_env\(|_from_env\(|\bEnv\(")
    offenders = [
        f"{path.relative_to(BASE_DIR)}:{n}"
        for path in product_files()
        if not path.relative_to(BASE_DIR).as_posix().startswith("portal/config/")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if builders.search(line) and "docker.from_env" not in line
    ]
    assert offenders == [], "use portal.config.load() and its sections"


def test_example_file_documents_itself_as_generated():
    assert "GENERATED from portal/config/table.py" in Path(BASE_DIR / ".env.example").read_text(encoding="utf-8")
