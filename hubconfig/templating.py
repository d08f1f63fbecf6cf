"""The hub's pages as part of the product: the portal's look, Chinese by default, a way back to the portal,
the portal's announcements, and a clear page when the portal cannot be reached during login.

Rules:
- Templates in hubconfig/templates (page, home, spawn_pending, not_running, error, admin) extend the hub's
  own (`{% extends "templates/page.html" %}`), so a JupyterHub upgrade keeps working pages; only wording,
  links and colours change.
- Language: the hub has no Django i18n and cannot see the portal's language cookie (another host), so each
  page picks from the browser's Accept-Language: English when the browser prefers English to Chinese,
  Chinese otherwise (the default, as on the portal). Strings are the small table STRINGS below, and
  `<html lang>` follows (zh-Hans or en): the hub's page.html writes `<html lang="en">` outside any block, so
  HtmlLangExtension rewrites that one tag when Jinja loads the template.
- Messages the hub's own scripts write into a page (spawn progress from the hub core and the default
  Spawner.progress(), the stop buttons) are English in the hub and carry no language of the request that
  shows them; page.html rewrites them in the browser, as they appear, from LIVE_MESSAGES (exact texts and
  prefixes, each checked against the installed JupyterHub by the tests).
- The React admin page (/hub/admin) cannot be translated without forking it; admin.html only frames it.
- Announcements come from the portal's /api/announcements/ over loopback, refreshed in a background thread
  every ANNOUNCEMENT_REFRESH_SECONDS, so a page never waits for the portal (and a portal that is down only
  means no announcement).
- When the hub's calls to the portal (token, userinfo) cannot connect, the login ends on a 503 page saying
  the portal is unavailable, instead of a bare 500.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from pathlib import Path

from jinja2.ext import Extension
from markupsafe import Markup

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
ANNOUNCEMENT_REFRESH_SECONDS = 15
PORTAL_UNAVAILABLE = "Portal Unavailable"  # the HTTP reason phrase error.html recognises
log = logging.getLogger(__name__)

STRINGS = {
    "zh": {
        "product": "CFPS JupyterHub",
        "back_to_portal": "返回门户",
        "home": "首页",
        "token": "令牌",
        "admin": "管理",
        "logout": "退出登录",
        "login": "登录",
        "start": "启动我的服务器",
        "open": "打开我的服务器",
        "stop": "停止我的服务器",
        "home_title": "我的 JupyterLab",
        "home_hint": "你的 JupyterLab 服务器在这里启动和停止。文件保存在你的主目录中，停止服务器不会删除它们。",
        "pending_title": "正在启动你的服务器",
        "pending_1": "你的 JupyterLab 正在启动，通常需要几秒钟。",
        "pending_2": "准备好后会自动打开。",
        "event_log": "启动日志",
        "stop_server": "停止服务器",
        "error_title": "出错了",
        "portal_unavailable": "门户暂时无法访问，所以现在无法登录。请一分钟后再试。",
        "try_again": "重试",
        "engine_away": "Docker 引擎暂时没有响应（可能正在重启），所以现在无法启动服务器。请一分钟后再试。",
        "admin_title": "Hub 管理",
        "admin_hint": "学生的账号、小组和邀请码在门户的管理后台中管理；这里只管理正在运行的服务器。",
        "portal_admin": "门户管理后台",
        "announcements": "公告",
        "not_running": "服务器未运行",
        "not_running_message": "你的 JupyterLab 服务器没有在运行。要启动它吗？",
        "spawn_failed": "服务器启动失败",
        "spawn_failed_message": "上一次启动你的服务器没有成功。要再试一次吗？如果一直失败，请告诉老师。",
        "relaunch": "重新启动服务器",
        "token_title": "API 令牌",
        "token_hint": "令牌让你自己的程序以你的身份使用 Hub 的 API。不要把令牌告诉别人。",
        "token_note": "备注",
        "token_note_placeholder": "用来认出这个令牌的备注",
        "token_note_help": "备注帮你记住每个令牌是做什么用的。",
        "token_default_note": "在令牌页面申请",
        "token_expires": "有效期",
        "token_expires_help": "过了这段时间，令牌就失效。",
        "token_scopes": "权限",
        "token_scopes_placeholder": "令牌的权限（scope），用空格分隔",
        "token_scopes_help": "可以只给令牌一部分权限。留空时，令牌可以做你能做的一切。",
        "token_scopes_docs": "可用的权限见 JupyterHub 文档",
        "token_request": "申请新的 API 令牌",
        "token_new": "你的新 API 令牌",
        "token_copy": "请复制这个令牌。之后无法再次查看，但随时可以回到这里申请新的令牌。",
        "token_list": "API 令牌",
        "token_list_hint": "这些令牌可以使用 Hub 的 API。撤销正在运行的服务器的令牌后，需要重启该服务器。",
        "token_permissions": "权限",
        "token_last_used": "最近使用",
        "token_created": "创建时间",
        "token_expires_at": "过期时间",
        "token_never_used": "从未使用",
        "token_never_expires": "永不过期",
        "token_scope_list": "权限列表",
        "token_revoke": "撤销",
        "token_apps": "已授权的应用",
        "token_apps_hint": "这些应用通过 OAuth 确认你的身份（大多是你的 JupyterLab 服务器）。OAuth 令牌一般只能用来确认身份，不能代你操作。",
        "token_app": "应用",
        "token_first_authorized": "首次授权",
    },
    "en": {
        "product": "CFPS JupyterHub",
        "back_to_portal": "Back to the portal",
        "home": "Home",
        "token": "Token",
        "admin": "Admin",
        "logout": "Log out",
        "login": "Log in",
        "start": "Start my server",
        "open": "Open my server",
        "stop": "Stop my server",
        "home_title": "My JupyterLab",
        "home_hint": "Start and stop your JupyterLab server here. Your files stay in your home folder when the server stops.",
        "pending_title": "Starting your server",
        "pending_1": "Your JupyterLab is starting; this usually takes a few seconds.",
        "pending_2": "It opens by itself when it is ready.",
        "event_log": "Start-up log",
        "stop_server": "Stop server",
        "error_title": "Something went wrong",
        "portal_unavailable": "The portal cannot be reached, so you cannot log in right now. Please try again in a minute.",
        "try_again": "Try again",
        "engine_away": "The Docker engine does not answer (it may be restarting), so no server can start now: try again in a minute.",
        "admin_title": "Hub administration",
        "admin_hint": "Students' accounts, groups and invite codes are managed in the portal's admin; here you manage running servers.",
        "portal_admin": "Portal admin",
        "announcements": "Announcements",
        "not_running": "Server not running",
        "not_running_message": "Your JupyterLab server is not running. Would you like to start it?",
        "spawn_failed": "The server did not start",
        "spawn_failed_message": "The last attempt to start your server failed. Try again? If it keeps failing, tell your teacher.",
        "relaunch": "Start the server again",
        "token_title": "API tokens",
        "token_hint": "A token lets your own programs use the hub's API as you. Never give a token to anyone.",
        "token_note": "Note",
        "token_note_placeholder": "a note to tell this token apart",
        "token_note_help": "The note helps you remember what each token is for.",
        "token_default_note": "Requested via token page",
        "token_expires": "Expires in",
        "token_expires_help": "The token stops working after this time.",
        "token_scopes": "Permissions",
        "token_scopes_placeholder": "the token's scopes, separated by spaces",
        "token_scopes_help": "You can give a token only some of your permissions. Left empty, it can do everything you can.",
        "token_scopes_docs": "the scopes are listed in the JupyterHub documentation",
        "token_request": "Request a new API token",
        "token_new": "Your new API token",
        "token_copy": "Copy this token. You cannot see it again, but you can always come back here for a new one.",
        "token_list": "API tokens",
        "token_list_hint": "These tokens can use the hub's API. After revoking the token of a running server, restart that server.",
        "token_permissions": "Permissions",
        "token_last_used": "Last used",
        "token_created": "Created",
        "token_expires_at": "Expires",
        "token_never_used": "Never",
        "token_never_expires": "Never",
        "token_scope_list": "scopes",
        "token_revoke": "Revoke",
        "token_apps": "Authorized applications",
        "token_apps_hint": "These applications use OAuth to know who you are (mostly your JupyterLab server). OAuth tokens can generally only identify you, not act for you.",
        "token_app": "Application",
        "token_first_authorized": "First authorized",
    },
}
DEFAULT_LANGUAGE = "zh"
HTML_LANG = {"zh": "zh-Hans", "en": "en"}  # as the portal's <html lang> (Django's zh-hans)

# English the hub's own code writes into its pages after they load, in the page's language. Each key is
# found in the installed JupyterHub by tests/hubconfig/test_templates.py, so an upgrade that rewords one fails there.
LIVE_MESSAGES = {
    "zh": {
        "exact": {
            "Server requested": "已请求启动服务器",  # Spawner._generate_progress
            "Spawning server...": "正在启动服务器……",  # Spawner.progress (neither of our spawners overrides it)
            "Spawn failed": "启动失败",  # apihandlers/users.py, the progress stream's end
            "Spawn cancelled": "启动已取消",
            "Stopping...": "正在停止……",  # spawn_pending.html's stop button
            "Stopping server...": "正在停止服务器……",
            "Server stopped successfully!": "服务器已停止。",
            "Stop Server": "停止服务器",
            "Start My Server": "启动我的服务器",  # home.js, after the stop button
            "Your server is stopping": "你的服务器正在停止",
            "Start your default server": "启动你的服务器",
        },
        "prefixes": {
            "Spawn failed: ": "启动失败：",
            "Server ready at ": "服务器已就绪：",
            "Error stopping server": "停止服务器时出错",
        },
    },
    "en": {"exact": {}, "prefixes": {}},
}
# The token page's expiry choices come from the hub as ready-made <option>s (handlers/pages.py).
EXPIRY_LABELS = {
    "zh": {
        "1 Hour": "1 小时",
        "1 Day": "1 天",
        "1 Week": "1 周",
        "1 Month": "1 个月",
        "1 Year": "1 年",
        "Never": "永不过期",
    },
}
EXPIRY_MAX = {"zh": (re.compile(r"Max \((\d+) (hours|days)\)"), {"hours": "最长 {} 小时", "days": "最长 {} 天"})}


def pick_language(accept_language: str) -> str:
    """`en` when the browser ranks English above Chinese (or has no Chinese at all but English), else `zh`."""
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for _q, _p, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary in STRINGS:
            return primary
    return DEFAULT_LANGUAGE


class Announcements:
    """The portal's current announcements, kept fresh by a daemon thread started on first use."""

    def __init__(self, url: str, refresh: float = ANNOUNCEMENT_REFRESH_SECONDS):
        self.url = url
        self.refresh = refresh
        self.items: list[dict] = []
        self._started = False
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy

    def fetch(self) -> None:
        try:
            with self._opener.open(self.url, timeout=2) as response:
                items = json.loads(response.read()).get("announcements", [])
            self.items = [{"message": str(i.get("message", "")), "level": str(i.get("level", "info"))} for i in items]
        except (OSError, ValueError) as exc:  # the portal is down or restarting: keep what we had
            log.debug("announcements from %s: %s", self.url, exc)

    def _loop(self) -> None:
        while True:
            time.sleep(self.refresh)
            self.fetch()

    def current(self) -> list[dict]:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._first_then_loop, name="cfps-announcements", daemon=True).start()
        return self.items

    def _first_then_loop(self) -> None:
        self.fetch()
        self._loop()


class HubPageContext:
    """`cfps` in the hub's templates (a JupyterHub template_vars callable: called with the user per page)."""

    def __init__(self, portal_url: str, portal_internal_url: str):
        self.portal_url = portal_url
        self.announcements = Announcements(f"{portal_internal_url}/api/announcements/")

    def __call__(self, user):
        return self

    @staticmethod
    def language(handler) -> str:
        header = handler.request.headers.get("Accept-Language", "") if handler is not None else ""
        return pick_language(header)

    def strings(self, handler) -> dict[str, str]:
        """The page's strings, in the language the request asks for (the template passes the handler)."""
        language = self.language(handler)
        return {**STRINGS[language], "lang": HTML_LANG[language]}

    def live_messages(self, handler) -> dict:
        return LIVE_MESSAGES[self.language(handler)]

    def expiry_options(self, handler, options_html: str) -> Markup:
        """The hub's <option>s for a token's lifetime, labelled in the page's language."""
        language = self.language(handler)
        labels = EXPIRY_LABELS.get(language, {})
        html = re.sub(r">([^<>]+)</option>", lambda m: f">{labels.get(m.group(1), m.group(1))}</option>", options_html)
        if language in EXPIRY_MAX:
            pattern, units = EXPIRY_MAX[language]
            html = pattern.sub(lambda m: units[m.group(2)].format(m.group(1)), html)
        return Markup(html)  # the hub's own markup (numbers and fixed labels), only relabelled

    def current_announcements(self) -> list[dict]:
        return self.announcements.current()

    def __deepcopy__(self, memo):
        # traitlets copies config values; this object holds a thread and a lock and is meant to be shared.
        return self

    def __eq__(self, other):  # two applications of the config compare equal (set-only, idempotent)
        return isinstance(other, HubPageContext) and other.portal_url == self.portal_url


class HtmlLangExtension(Extension):
    """Gives the hub's page.html the page's language: its `<html lang="en">` stands outside any block, so no
    template that extends it can change it."""

    TAG = '<html lang="en">'
    REPLACEMENT = '<html lang="{{ cfps.strings(static_url.__self__).lang if cfps is defined else "en" }}">'

    def preprocess(self, source, name, filename=None):
        # The hub's own page.html (ours extends it as templates/page.html; the prefix is gone by now).
        if name != "page.html" or not filename or Path(filename).resolve().parent == TEMPLATES_DIR:
            return source
        if self.TAG not in source:  # a JupyterHub upgrade changed the tag: the page stays English-tagged
            log.warning("hub page.html has no %s to give the page's language to", self.TAG)
            return source
        return source.replace(self.TAG, self.REPLACEMENT, 1)


def apply_templates(c, topo) -> None:
    """Set-only: the hub's template folder, the `cfps` template variable and the <html lang> rewrite."""
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
    c.JupyterHub.template_vars = {"cfps": HubPageContext(topo.public_url, topo.portal_internal_url)}
    c.JupyterHub.jinja_environment_options = {"extensions": [f"{__name__}.HtmlLangExtension"]}


class PortalUnavailableMixin:
    """For the OAuthenticator: a portal that does not answer is a 503 with a clear page, not a 500."""

    async def httpfetch(self, url, label="fetching", parse_json=True, raise_error=True, **kwargs):
        from tornado import web
        from tornado.httpclient import HTTPClientError

        try:
            return await super().httpfetch(url, label=label, parse_json=parse_json, raise_error=raise_error, **kwargs)
        except HTTPClientError as exc:
            if exc.code != 599:  # the portal answered (e.g. 400 for a bad code): not ours to reword
                raise
            self.log.error("the portal did not answer (%s %s): %s", label, url, exc)
        except OSError as exc:  # connection refused or reset, name resolution
            self.log.error("the portal did not answer (%s %s): %s", label, url, exc)
        raise web.HTTPError(503, log_message=f"portal unavailable while {label}", reason=PORTAL_UNAVAILABLE)
