"""Browser fixtures: the real portal under gunicorn (tests/live.py) driven by Debian's Chromium.

A plugin registered once in tests/conftest.py (pytest_plugins), so every folder shares ONE session-wide
browser: two Playwright sync instances cannot live in one process at the same time.

Never downloads a browser: Playwright launches /usr/bin/chromium. Without it the tests skip locally and
FAIL when CI=true. The browser can only reach 127.0.0.1: host names other than localhost do not resolve and
every request URL a test makes is checked at teardown.

Screenshots go to <repo>/test-results/<test name>/ (git-ignored) so a person can look at them afterwards;
`doc_screenshot` ones to docs/images/ (committed), where the guides show them.
"""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urlsplit

import pytest

from tests.live import REPO, PortalProcess, check_cjk_font, require_chromium

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
RESULTS_DIR = REPO / "test-results"
DOCS_IMAGES = REPO / "docs" / "images"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Belt and braces for "only ever talk to 127.0.0.1": ignore proxy variables and make every other
    # host name unresolvable, so a stray link or a browser service cannot reach the network.
    "--no-proxy-server",
    # (*.localhost: the per-student hosts of USER_SUBDOMAINS=true, which Chromium itself sends to loopback)
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.localhost , EXCLUDE 127.0.0.1",
]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def live_portal(tmp_path_factory):
    with PortalProcess(tmp_path_factory.mktemp("live-portal")) as portal:
        yield portal


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API keeps an event loop running in this thread for the whole session, and Django then
    # refuses to open a database connection here ("SynchronousOnlyOperation") for any later test of the same
    # process that needs one anew (a parallel worker runs the folders in any order). The tests' own Django code
    # is synchronous, so the check has nothing to protect: Playwright's docs for Django say the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    executable = require_chromium()
    check_cjk_font()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def results_dir(request):
    """test-results/<test name>/, emptied at the start of the test so it only holds this run's files."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = RESULTS_DIR / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def screenshot(results_dir):
    """screenshot(page, "01-home") saves a full-page PNG under the test's results folder."""

    def take(page, name: str):
        path = results_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def doc_screenshot():
    """doc_screenshot(page, "teacher-usage") saves what the page shows now (the viewport, in CSS pixels) as
    docs/images/teacher-usage.png, a picture the guides in docs/ show. Every run of the test takes it again, so the
    guides never show an old page: commit the new PNG with the change that altered the page. tests/docs fails when
    a picture is shown nowhere or a page shows one that no test takes."""

    def take(page, name: str):
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
            raise ValueError(f"{name!r}: a docs image is named like teacher-usage")
        DOCS_IMAGES.mkdir(exist_ok=True)
        path = DOCS_IMAGES / f"{name}.png"
        page.screenshot(path=str(path), scale="css", animations="disabled", caret="hide")
        return path

    return take


@pytest.fixture
def new_context(browser, request, results_dir):
    """Factory for fresh browser contexts (own cookies, no cache). Closed, and checked, at teardown."""
    contexts = []
    requested_urls: list[str] = []

    def make(*, viewport=DESKTOP, locale="zh-CN", **options):
        context = browser.new_context(viewport=viewport, locale=locale, **options)
        context.set_default_timeout(10_000)
        context.on("request", lambda req: requested_urls.append(req.url))
        contexts.append(context)
        return context

    yield make

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, context in enumerate(contexts):
        if failed:
            for j, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(results_dir / f"failure-{i}-{j}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - a failure screenshot is best effort
                    pass
        context.close()
    remote = [
        url
        for url in requested_urls
        if url.startswith("http")
        and urlsplit(url).hostname not in LOCAL_HOSTS
        and not urlsplit(url).hostname.endswith(".localhost")
    ]
    assert not remote, f"the page tried to reach hosts other than 127.0.0.1: {remote}"


@pytest.fixture
def page(new_context):
    """A desktop-sized page (1280x800) in a fresh context, Chinese Accept-Language."""
    return new_context(viewport=DESKTOP).new_page()


@pytest.fixture
def phone_page(new_context):
    """A phone-sized page (390x844, touch, mobile) in a fresh context, Chinese Accept-Language."""
    return new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
