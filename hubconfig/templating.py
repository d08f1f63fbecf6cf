"""The hub's pages as part of the product: the portal's look, Chinese by default, a way back to the portal,
the portal's announcements, and a clear page when the portal cannot be reached during login.

Rules:
- Templates in hubconfig/templates (page, home, spawn_pending, not_running, error, admin) extend the hub's
  own (`{% extends "templates/page.html" %}`), so a JupyterHub upgrade keeps working pages; only wording,
  links and colours change.
- Language: the hub has no Django i18n and cannot see the portal's language cookie (another host), so each
  page picks from the browser's Accept-Language: English when the browser prefers English to Chinese,
  Chinese otherwise (the default, as on the portal). Strings are the small table STRINGS below.
- Announcements come from the portal's /api/announcements/ over loopback, refreshed in a background thread
  every ANNOUNCEMENT_REFRESH_SECONDS, so a page never waits for the portal (and a portal that is down only
  means no announcement).
- When the hub's calls to the portal (token, userinfo) cannot connect, the login ends on a 503 page saying
  the portal is unavailable, instead of a bare 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

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
        "admin_title": "Hub 管理",
        "admin_hint": "学生的账号、小组和邀请码在门户的管理后台中管理；这里只管理正在运行的服务器。",
        "portal_admin": "门户管理后台",
        "announcements": "公告",
        "not_running": "服务器未运行",
        "not_running_message": "你的 JupyterLab 服务器没有在运行。要启动它吗？",
        "spawn_failed": "服务器启动失败",
        "spawn_failed_message": "上一次启动你的服务器没有成功。要再试一次吗？如果一直失败，请告诉老师。",
        "relaunch": "重新启动服务器",
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
        "admin_title": "Hub administration",
        "admin_hint": "Students' accounts, groups and invite codes are managed in the portal's admin; here you manage running servers.",
        "portal_admin": "Portal admin",
        "announcements": "Announcements",
        "not_running": "Server not running",
        "not_running_message": "Your JupyterLab server is not running. Would you like to start it?",
        "spawn_failed": "The server did not start",
        "spawn_failed_message": "The last attempt to start your server failed. Try again? If it keeps failing, tell your teacher.",
        "relaunch": "Start the server again",
    },
}
DEFAULT_LANGUAGE = "zh"


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

    def strings(self, handler) -> dict[str, str]:
        """The page's strings, in the language the request asks for (the template passes the handler)."""
        header = handler.request.headers.get("Accept-Language", "") if handler is not None else ""
        return {**STRINGS[pick_language(header)], "lang": pick_language(header)}

    def current_announcements(self) -> list[dict]:
        return self.announcements.current()

    def __deepcopy__(self, memo):
        # traitlets copies config values; this object holds a thread and a lock and is meant to be shared.
        return self

    def __eq__(self, other):  # two applications of the config compare equal (set-only, idempotent)
        return isinstance(other, HubPageContext) and other.portal_url == self.portal_url


def apply_templates(c, topo) -> None:
    """Set-only: the hub's template folder and the `cfps` template variable."""
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
    c.JupyterHub.template_vars = {"cfps": HubPageContext(topo.public_url, topo.portal_internal_url)}


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
