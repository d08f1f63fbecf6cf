"""The hub's own pages (hubconfig/templating.py): template folder and variables in the config, the language
choice, both string tables complete, and every override rendered by the hub's own Jinja set-up (the same
loaders JupyterHub builds). tests/e2e/test_staff_pages.py checks the pages of a running hub."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import jinja2
import pytest
from traitlets.config import Config

from hubconfig import templating
from hubconfig.config import apply_config
from portal.envfile import Env


@pytest.fixture(autouse=True)
def _private_var_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CFPS_VAR_DIR", str(tmp_path / "var"))


def configured(**values) -> Config:
    c = Config()
    apply_config(c, Env({"SPAWNER": "local", **values}))
    return c


def test_the_hub_reads_our_templates_and_gets_the_portal_links():
    c = configured(PORT="9000")
    assert c.JupyterHub.template_paths == [str(templating.TEMPLATES_DIR)]
    context = c.JupyterHub.template_vars["cfps"]
    assert callable(context) and context(None) is context
    assert context.portal_url == "http://127.0.0.1:9000"
    assert context.announcements.url.endswith("/api/announcements/")
    assert context.announcements.url.startswith("http://127.0.0.1:")  # loopback, never the public origin


def test_applying_twice_gives_the_same_template_config():
    once, twice = configured(), configured()
    apply_config(twice, Env({"SPAWNER": "local"}))
    assert once.JupyterHub.template_paths == twice.JupyterHub.template_paths
    assert once.JupyterHub.template_vars == twice.JupyterHub.template_vars


@pytest.mark.parametrize(
    ("accept_language", "language"),
    [
        ("", "zh"),
        ("zh-CN,zh;q=0.9", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh-CN;q=0.9,en;q=0.5", "zh"),
        ("en;q=0.3,zh-TW;q=0.8", "zh"),
        ("fr-FR,fr;q=0.9", "zh"),  # neither: the product's default
        ("de,en;q=0.5", "en"),
        ("garbage;q=x,en", "en"),
    ],
)
def test_the_language_follows_accept_language_with_chinese_by_default(accept_language, language):
    assert templating.pick_language(accept_language) == language


def test_both_string_tables_have_the_same_keys():
    assert set(templating.STRINGS["zh"]) == set(templating.STRINGS["en"])


class _Portal(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        body = (
            b'{"announcements": [{"message": "\xe4\xbb\x8a\xe6\x99\x9a\xe7\xbb\xb4\xe6\x8a\xa4", "level": "warning"}]}'
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_announcements_are_read_from_the_portal_and_kept_when_it_goes_away():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = templating.Announcements(f"http://127.0.0.1:{server.server_address[1]}/api/announcements/")
    feed.fetch()
    assert feed.items == [{"message": "今晚维护", "level": "warning"}]
    server.shutdown()
    server.server_close()
    feed.fetch()  # connection refused now: keep the last known list, never raise
    assert feed.items == [{"message": "今晚维护", "level": "warning"}]


def _jupyterhub_environment():
    """The loaders JupyterHub's app builds (app.py init_tornado_settings): ours first, its own as templates/."""
    import jupyterhub

    default = str(templating.Path(jupyterhub.__file__).resolve().parents[4] / "share" / "jupyterhub" / "templates")
    if not templating.Path(default).is_dir():  # an installed layout other than the venv's share/
        default = str(templating.Path(jupyterhub.__file__).parent / "templates")
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([default])}, "/"),
            jinja2.FileSystemLoader([str(templating.TEMPLATES_DIR), default]),
        ]
    )
    return jinja2.Environment(loader=loader, autoescape=True)


class _Handler:
    """What the hub's templates get from a request handler: `static_url` is its bound method."""

    def __init__(self, accept_language):
        self.request = SimpleNamespace(headers={"Accept-Language": accept_language})

    def static_url(self, path, **kwargs):
        return f"/jupyter/hub/static/{path}"


def render(page, accept_language, **values):
    context = templating.HubPageContext("http://127.0.0.1:9000", "http://127.0.0.1:1")
    context.announcements.items = [{"message": "今晚维护", "level": "info"}]
    context.announcements._started = True  # no background fetch in this test
    handler = _Handler(accept_language)
    namespace = {
        "cfps": context,
        "static_url": handler.static_url,
        "base_url": "/jupyter/hub/",
        "prefix": "/jupyter/",
        "user": SimpleNamespace(name="lihua", spawner=SimpleNamespace(options_form=None)),
        "parsed_scopes": {"admin-ui"},
        "services": [],
        "login_url": "/jupyter/hub/login",
        "logout_url": "/jupyter/hub/logout",
        "default_server": SimpleNamespace(active=False),
        "url": "/jupyter/hub/spawn/lihua",
        "status_code": 500,
        "status_message": "Internal Server Error",
        "message": "boom",
        "xsrf": "x",
        "api_page_limit": 50,
        "spawn_url": "/jupyter/hub/spawn/lihua",
        "server_name": "",
        **values,
    }
    return _jupyterhub_environment().get_template(page).render(**namespace)


@pytest.mark.parametrize("page", ["home.html", "spawn_pending.html", "error.html", "admin.html", "not_running.html"])
@pytest.mark.parametrize(("accept_language", "expected"), [("zh-CN", "返回门户"), ("en-US", "Back to the portal")])
def test_every_override_renders_in_the_chosen_language_with_a_link_to_the_portal(page, accept_language, expected):
    html = render(page, accept_language)
    assert expected in html
    assert 'href="http://127.0.0.1:9000/"' in html
    assert "今晚维护" in html  # the portal's announcement


def test_home_page_is_chinese_by_default():
    html = render("home.html", "")
    assert "启动我的服务器" in html and "我的 JupyterLab" in html and "Start My Server" not in html


def test_the_error_page_says_the_portal_is_unavailable_on_a_portal_outage():
    html = render("error.html", "zh-CN", status_code=503, status_message=templating.PORTAL_UNAVAILABLE)
    assert "门户暂时无法访问" in html and "重试" in html
    assert "门户暂时无法访问" not in render(
        "error.html", "zh-CN", status_code=503, status_message="Service Unavailable"
    )


def test_the_template_variable_survives_the_config_copies_jupyterhub_makes():
    import copy

    c = configured()
    copied = copy.deepcopy(c)
    context = c.JupyterHub.template_vars["cfps"]
    context.current_announcements()  # starts its thread: copies must still work afterwards
    assert copy.deepcopy(c).JupyterHub.template_vars["cfps"] is context
    assert copied.JupyterHub.template_vars["cfps"] is context


@pytest.mark.parametrize(("failed", "expected"), [(False, "服务器未运行"), (True, "服务器启动失败")])
def test_the_not_running_page_is_chinese(failed, expected):
    html = render("not_running.html", "zh-CN", failed=failed, failed_message="boom")
    assert expected in html and "Launch" not in html and "Relaunch" not in html
