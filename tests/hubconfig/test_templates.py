"""The hub's own pages (hubconfig/templating.py): template folder and variables in the config, the language
choice, both string tables complete, every override rendered by the hub's own Jinja set-up (the same
loaders JupyterHub builds) with <html lang> in the page's language, the token page in both languages, and
the English the hub's scripts write into pages still found in the installed JupyterHub.
tests/e2e/test_staff_pages.py checks the pages of a running hub."""

import json
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import jinja2
import pytest
from traitlets.config import Config

from hubconfig import templating
from hubconfig.config import apply_config
from portal.config import Config as AppConfig
from portal.config.env import Env


def configured(**values) -> Config:
    c = Config()
    apply_config(c, AppConfig(Env({"SPAWNER": "local", **values})))
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
    apply_config(twice, AppConfig(Env({"SPAWNER": "local"})))
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
    """The loaders JupyterHub's app builds (app.py init_tornado_settings): ours first, its own as templates/,
    with the Jinja options our config gives it."""
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
    return jinja2.Environment(loader=loader, autoescape=True, **configured().JupyterHub.jinja_environment_options)


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
    html = re.sub(r"<script.*?</script>", "", render("home.html", ""), flags=re.S)  # the live table names English
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


PAGES = ["home.html", "spawn_pending.html", "error.html", "admin.html", "not_running.html", "token.html"]
EXPIRY_OPTIONS = (  # as the hub's TokenPageHandler writes them (handlers/pages.py), with a maximum of 3 days
    '<option value="3600">1 Hour</option>\n<option value="86400">1 Day</option>\n'
    '<option selected="selected"value="">Max (3 days)</option>'
)
API_TOKEN = SimpleNamespace(
    api_id="a1",
    note="Requested via token page",
    scopes=["inherit"],
    last_activity=None,
    created=datetime(2026, 3, 1, 8, 30),
    expires_at=None,
)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("accept_language", "lang"), [("zh-CN,zh;q=0.9", "zh-Hans"), ("", "zh-Hans"), ("en-US", "en")])
def test_every_page_tells_the_browser_its_language(page, accept_language, lang):
    html = render(page, accept_language, api_tokens=[], token_expires_in_options_html=EXPIRY_OPTIONS)
    assert f'<html lang="{lang}">' in html
    assert html.count("<html") == 1


def test_the_hubs_page_html_still_has_the_tag_the_language_goes_into():
    source = templating.Path(_jupyterhub_environment().loader.loaders[0].mapping["templates"].searchpath[0])
    assert templating.HtmlLangExtension.TAG in (source / "page.html").read_text()


def test_the_token_page_is_chinese():
    html = render("token.html", "zh-CN", api_tokens=[API_TOKEN], token_expires_in_options_html=EXPIRY_OPTIONS)
    for text in ["申请新的 API 令牌", "备注", "有效期", "权限", "你的新 API 令牌", "撤销", "永不过期", "从未使用"]:
        assert text in html, text
    assert ">1 小时</option>" in html and ">最长 3 天</option>" in html and 'value="86400">1 天<' in html
    assert "在令牌页面申请" in html  # the hub's default note for a token requested here
    english = ["Request new API token", "Your new API Token", "Copy this token", ">revoke<", "Never", "1 Hour", "Note<"]
    assert not [text for text in english if text in html]
    # What the hub's token.js needs is still there.
    for hook in ['id="request-token-form"', 'id="token-note"', 'id="token-expiration-seconds"', 'id="token-scopes"',
                 'id="token-area"', 'id="token-result"', 'class="revoke-token-btn', 'data-token-id="a1"']:  # fmt: skip
        assert hook in html, hook


def test_the_token_page_is_english_for_an_english_browser():
    html = render("token.html", "en-US", api_tokens=[API_TOKEN], token_expires_in_options_html=EXPIRY_OPTIONS)
    assert "Request a new API token" in html and ">1 Hour</option>" in html and "Max (3 days)" in html
    assert "令牌" not in html


def _jupyterhub_sources() -> str:
    """The hub's Python, templates and scripts that write the messages LIVE_MESSAGES and EXPIRY_LABELS name."""
    import jupyterhub

    package = templating.Path(jupyterhub.__file__).parent
    share = templating.Path(_jupyterhub_environment().loader.loaders[0].mapping["templates"].searchpath[0]).parent
    files = [package / "spawner.py", package / "apihandlers" / "users.py", package / "handlers" / "pages.py"]
    files += [share / "templates" / "spawn_pending.html", share / "static" / "js" / "home.js"]
    return "\n".join(path.read_text() for path in files)


def test_every_live_message_we_translate_is_still_written_by_the_installed_jupyterhub():
    sources = _jupyterhub_sources()
    table = templating.LIVE_MESSAGES["zh"]
    missing = [text for text in [*table["exact"], *table["prefixes"]] if text not in sources]
    missing += [label for label in templating.EXPIRY_LABELS["zh"] if f'"{label}"' not in sources]
    assert 'f"Max ({max_label})"' in sources and 'f"{max_days:.0f} days"' in sources
    assert not missing, f"JupyterHub no longer writes {missing}: update hubconfig/templating.py"


@pytest.mark.parametrize(("accept_language", "expected"), [("zh-CN", "已请求启动服务器"), ("en-US", None)])
def test_pages_carry_the_live_message_table_of_their_language_only(accept_language, expected):
    html = render("spawn_pending.html", accept_language, progress_url="/jupyter/hub/api/users/lihua/server/progress")
    if expected:
        assert "MutationObserver" in html and json.dumps(expected) in html  # as Jinja's tojson writes it
    else:
        assert "MutationObserver" not in html  # nothing to rewrite on an English page
