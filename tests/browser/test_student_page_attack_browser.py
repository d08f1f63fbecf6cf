"""A student's own page, opened in Chromium by someone logged in, cannot act as them (issues 9 and 20).

A student controls everything their server sends (tests/browser/own_server.py is such a server: every request
under the student's path gets the student's page). The page tries what an attacker would, with the cookies of
whoever opens it, and reports what it saw in <pre id="result"> as JSON:
- on the portal, opened by a teacher: read the portal's cookies, read the Django admin's form of the student
  and post it back with "staff" and "superuser" ticked (issue 9: the portal on an origin of its own);
- on the hub, opened by staff: frame the hub's home and read its XSRF token, or fetch it; then list every user,
  read another student's auth state (their portal tokens), mint a hub API token for the staff account (usable
  from outside the browser), make the student a hub admin (issue 20);
- on the hub and the victim's server, opened by another student: the same XSRF token, a hub token minted for
  the victim, the victim's file read, a file written into the victim's home (issue 20).
What it achieved is checked where it would show (the portal's and the hub's databases, the victim's home), not
only in its own report. Before issue 20 every student's server shared the hub's origin, the hub let itself be
framed by that origin and staff were JupyterHub admins: the hub's part of these attacks succeeded.

The last test runs the staff attack against the opt-out, a shared hub origin (USER_SUBDOMAINS=false): there the
page does get the hub's XSRF token, and finds that staff hold nothing a student lacks.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import own_server
from tests.e2e import flows
from tests.live import Stack

NAVIGATION_TIMEOUT = 30_000
ATTACK_NOTE = "homework helper"  # the note of every hub token the page tries to mint

# --- the pages -------------------------------------------------------------------------------------------------
PORTAL_ATTACK = """<!doctype html><html><head><meta charset="utf-8"><title>homework</title></head><body>
<pre id="result" style="white-space: pre-wrap">running</pre>
<script>
(async () => {
  const portal = PORTAL;
  const out = {cookie: document.cookie, steps: []};
  const tokenFromCookie = (document.cookie.match(/cfps_csrftoken=([^;]+)/) || [])[1] || "";
  async function attempt(name, fn) {
    try { out.steps.push([name, await fn()]); } catch (e) { out.steps.push([name, "error: " + e]); }
  }
  let fields = null;
  await attempt("read admin form", async () => {
    const r = await fetch(portal + "/admin/accounts/user/" + USER_ID + "/change/", {credentials: "include"});
    const html = await r.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    const form = doc.querySelector("#user_form");
    if (form) {
      fields = new URLSearchParams();
      for (const el of form.querySelectorAll("input, select, textarea")) {
        if (!el.name || el.type === "submit") continue;
        if (el.type === "checkbox" || el.type === "radio") { if (el.checked) fields.append(el.name, el.value); continue; }
        if (el.tagName === "SELECT") { for (const o of el.selectedOptions) fields.append(el.name, o.value); continue; }
        fields.append(el.name, el.value);
      }
      fields.set("is_staff", "on");
      fields.set("is_superuser", "on");
    }
    return {status: r.status, url: r.url, form: !!form};
  });
  if (fields) {
    await attempt("post with the form's token", async () => {
      const r = await fetch(portal + "/admin/accounts/user/" + USER_ID + "/change/",
        {method: "POST", credentials: "include", body: fields});
      return {status: r.status};
    });
  }
  await attempt("post blind with the cookie's token", async () => {
    const body = new URLSearchParams({csrfmiddlewaretoken: tokenFromCookie, username: USERNAME,
      is_active: "on", is_staff: "on", is_superuser: "on"});
    await fetch(portal + "/admin/accounts/user/" + USER_ID + "/change/",
      {method: "POST", mode: "no-cors", credentials: "include", body});
    return "sent";
  });
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script></body></html>
"""

# C = {hub, me, victim, other, victimServer, note}: the hub's origin, the student, whose account to mint a token
# for, whose auth state to read, the victim's server URL (another student's), the tokens' note.
HUB_ATTACK = """<!doctype html><html><head><meta charset="utf-8"><title>homework</title></head><body>
<pre id="result" style="white-space: pre-wrap">running</pre>
<script>
(async () => {
  const C = CONFIG;
  const out = {origin: location.origin, xsrf: "", steps: []};
  async function attempt(name, fn) {
    try { out.steps.push([name, await fn()]); } catch (e) { out.steps.push([name, "error: " + e]); }
  }
  function framed(url, read) {
    return new Promise((resolve) => {
      const frame = document.createElement("iframe");
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        try { resolve(read(frame)); } catch (e) { resolve("error: " + e); }
      };
      frame.onload = () => setTimeout(finish, 500);
      setTimeout(finish, 10000);
      frame.src = url;
      document.body.appendChild(frame);
    });
  }
  // The hub's XSRF token: out of a framed hub page, or a hub page fetched with the visitor's cookies.
  await attempt("frame the hub's home", () => framed(C.hub + "/jupyter/hub/home", (frame) => {
    const token = frame.contentWindow.jhdata.xsrf_token;
    out.xsrf = out.xsrf || token;
    return "read a token of " + token.length;
  }));
  await attempt("fetch the hub's home", async () => {
    const r = await fetch(C.hub + "/jupyter/hub/home", {credentials: "include"});
    const match = (await r.text()).match(/xsrf_token: "([^"]+)"/);
    if (match) out.xsrf = out.xsrf || match[1];
    return {status: r.status, token: !!match};
  });
  // (JSON, as the hub's API wants it: it refuses text/plain posts, the kind a page sends without asking)
  const json = {"Content-Type": "application/json"};
  const api = (path, init = {}) => fetch(C.hub + "/jupyter/hub/api" + path,
    {credentials: "include", ...init, headers: {"X-XSRFToken": out.xsrf, ...json}});
  await attempt("list every user", async () => {
    const r = await api("/users");
    if (r.ok) out.users = await r.text();
    return r.status;
  });
  await attempt("read another student's auth state", async () => {
    const r = await api("/users/" + C.other);
    const body = await r.text();
    if (body.includes("auth_state")) out.auth_state = body;
    return r.status;
  });
  await attempt("mint a hub token", async () => {
    const r = await api("/users/" + C.victim + "/tokens", {method: "POST", body: JSON.stringify({note: C.note})});
    if (r.ok) out.token = (await r.json()).token;
    return r.status;
  });
  await attempt("make the student a hub admin", async () => {
    const r = await api("/users/" + C.me, {method: "PATCH", body: JSON.stringify({admin: true})});
    return r.status;
  });
  await attempt("mint a hub token blind", async () => {
    await fetch(C.hub + "/jupyter/hub/api/users/" + C.victim + "/tokens",
      {method: "POST", mode: "no-cors", credentials: "include", body: JSON.stringify({note: C.note})});
    return "sent";
  });
  if (C.victimServer) {
    // The victim's own server: its XSRF cookie out of a framed page of it, then read and write the files.
    await attempt("frame the victim's JupyterLab", () => framed(C.victimServer + "lab", (frame) => {
      const match = frame.contentDocument.cookie.match(/_xsrf=([^;]+)/);
      if (match) out.serverXsrf = match[1];
      return match ? "read its XSRF cookie" : "no cookie";
    }));
    // With the victim's cookies and their server's XSRF token, or with the hub token minted for the victim
    // (what the attacker would also use from outside the browser).
    const files = (path, init = {}) => fetch(C.victimServer + "api/contents/" + path,
      {credentials: "include", ...init, headers: {"X-XSRFToken": out.serverXsrf || "", ...json}});
    const withToken = (path, init = {}) => fetch(C.victimServer + "api/contents/" + path,
      {...init, headers: {"Authorization": "token " + out.token, ...json}});
    const write = {method: "PUT", body: JSON.stringify({type: "file", format: "text", content: "written by another student"})};
    for (const [how, call] of [["with the victim's cookies", files], ["with the minted token", withToken]]) {
      if (how === "with the minted token" && !out.token) continue;
      await attempt("read the victim's file " + how, async () => {
        const r = await call("secret.txt?content=1");
        if (r.ok) out.secret = await r.text();
        return r.status;
      });
      await attempt("write into the victim's home " + how, async () => (await call("pwned.txt", write)).status);
    }
  }
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script></body></html>
"""


# --- the stacks ------------------------------------------------------------------------------------------------
def own_server_stack(tmp: Path, **extra_env: str) -> Stack:
    """A stack whose hub starts tests/browser/own_server.py as every user's server (the module docstring). The
    option is given twice so JupyterHub reads it as a list (one value would be one string, read as nothing)."""
    env = {"INVITE_CODES": flows.INVITE_CODE, **extra_env}
    command = ("--LocalHomeSpawner.cmd", sys.executable, "--LocalHomeSpawner.cmd", own_server.__file__)
    return Stack(tmp, proxy="python", extra_env=env, hub_args=command)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with own_server_stack(tmp_path_factory.mktemp("attack-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """The opt-out: every student's server on the hub's own origin (allowed as is in dev)."""
    with own_server_stack(tmp_path_factory.mktemp("shared-attack-stack"), USER_SUBDOMAINS="false") as running:
        yield running


# --- helpers ---------------------------------------------------------------------------------------------------
def home_of(stack: Stack, username: str) -> Path:
    return Path(stack.env["CFPS_VAR_DIR"]) / "users" / username


def start_server(stack: Stack, username: str) -> str:
    """The user starts their server through the hub; returns its public URL, as the hub gives it."""
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, username)
        client.post(
            f"/jupyter/hub/api/users/{username}/server", json={}, headers={"X-XSRFToken": flows.hub_xsrf_token(client)}
        )
        model = flows.wait_until(lambda: _ready_server(stack, username), timeout=60)
    assert model, flows.explain(stack, f"{username}'s server did not start")
    return model["full_url"]


def _ready_server(stack: Stack, username: str) -> dict | None:
    server = flows.hub_api(stack, f"/users/{username}").json().get("servers", {}).get("")
    return server if server and server.get("ready") else None


def plant_page(stack: Stack, username: str, html: str) -> str:
    """What the student does: their server sends `html` for every path (own_server.py); its URL."""
    home = home_of(stack, username)
    home.mkdir(parents=True, exist_ok=True)
    (home / own_server.PAGE_NAME).write_text(html, encoding="utf-8")
    return start_server(stack, username) + "homework.html"


def hub_page(stack: Stack, **config) -> str:
    return HUB_ATTACK.replace("CONFIG", json.dumps({"hub": stack.hub_base_url, "note": ATTACK_NOTE, **config}))


def log_in(stack: Stack, context, username: str) -> None:
    """Log in at the portal and open the hub's home, as a person at the start of a class does."""
    page = context.new_page()
    page.goto(stack.url("/accounts/login/"), timeout=NAVIGATION_TIMEOUT)
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(flows.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.goto(stack.url("/jupyter/hub/home"), timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("body")).to_contain_text(username)
    page.close()


def run_page(context, url: str, screenshot, name: str) -> dict:
    page = context.new_page()
    page.goto(url, timeout=NAVIGATION_TIMEOUT)
    result = page.locator("#result")
    expect(result).not_to_have_text("running", timeout=60_000)
    screenshot(page, name)
    report = json.loads(result.text_content())
    report["page_url"] = page.url
    return report


def hub_db(stack: Stack, sql: str, *args) -> list[tuple]:
    """Read the hub's own database (SQLite, read-only): what the page achieved on the hub."""
    db = sqlite3.connect(f"file:{stack.hub_dir / 'jupyterhub.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def minted_tokens(stack: Stack, username: str) -> int:
    sql = (
        "SELECT count(*) FROM api_tokens JOIN users ON users.id = api_tokens.user_id WHERE users.name = ? AND note = ?"
    )
    return hub_db(stack, sql, username, ATTACK_NOTE)[0][0]


def hub_roles(stack: Stack, username: str) -> tuple[bool, list[str]]:
    (admin,) = hub_db(stack, "SELECT admin FROM users WHERE name = ?", username)[0]
    sql = "SELECT roles.name FROM roles JOIN user_role_map AS m ON roles.id = m.role_id JOIN users ON users.id = m.user_id WHERE users.name = ?"
    return bool(admin), sorted(name for (name,) in hub_db(stack, sql, username))


def portal_flags(stack: Stack, username: str) -> dict:
    script = (
        "import json\nfrom accounts.models import User\n"
        f"u = User.objects.get(username={username!r})\n"
        "print(json.dumps({'is_staff': u.is_staff, 'is_superuser': u.is_superuser}))\n"
    )
    return json.loads(stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


def step(report: dict, name: str):
    return dict(report["steps"]).get(name)


# --- the portal (issue 9) ----------------------------------------------------------------------------------------
def test_a_students_page_opened_by_staff_cannot_read_portal_cookies_or_act_as_staff(stack, new_context, screenshot):
    student = flows.unique_username("stu")
    student_id = flows.create_user(stack, student)
    teacher = flows.unique_username("teacher")
    flows.create_user(stack, teacher, superuser=True)
    page = (
        PORTAL_ATTACK.replace("PORTAL", json.dumps(stack.base_url))
        .replace("USER_ID", json.dumps(str(student_id)))
        .replace("USERNAME", json.dumps(student))
    )
    attack_url = plant_page(stack, student, page)

    context = new_context(locale="zh-CN")
    admin = context.new_page()
    admin.goto(stack.url("/accounts/login/"), timeout=NAVIGATION_TIMEOUT)
    admin.locator("#id_username").fill(teacher)
    admin.locator("#id_password").fill(flows.PASSWORD)
    admin.locator("main form button[type=submit]").click()
    admin.goto(stack.url("/admin/"), timeout=NAVIGATION_TIMEOUT)
    expect(admin.locator("#user-tools")).to_contain_text(teacher)  # the teacher really is logged in to the admin

    report = run_page(context, attack_url, screenshot, "student-page-opened-by-staff")
    assert "cfps_" not in report["cookie"], f"the student's page read portal cookies: {report['cookie']!r}"
    read = step(report, "read admin form")
    assert not (isinstance(read, dict) and read.get("form")), f"the student's page read the admin form: {report}"
    assert portal_flags(stack, student) == {"is_staff": False, "is_superuser": False}, report
    # The page did run (the attack was really tried), on the student's own host, not the portal's.
    assert report["page_url"].startswith(stack.user_url(student)), report["page_url"]
    assert len(report["steps"]) >= 2, report


# --- the hub (issue 20) ------------------------------------------------------------------------------------------
def test_a_students_page_opened_by_staff_cannot_read_the_hubs_xsrf_token_or_call_its_api(
    stack, new_context, screenshot
):
    student, other, teacher = (flows.unique_username(p) for p in ("stu", "other", "teacher"))
    flows.create_user(stack, student)
    flows.create_user(stack, other)
    flows.create_user(stack, teacher, role="teacher")
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, other)  # another student, with auth state (their portal tokens) on the hub
    attack_url = plant_page(stack, student, hub_page(stack, me=student, victim=teacher, other=other))

    context = new_context(locale="zh-CN")
    log_in(stack, context, teacher)
    report = run_page(context, attack_url, screenshot, "student-page-opened-by-staff-on-the-hub")

    assert not report["xsrf"], f"the student's page read the hub's XSRF token: {report['steps']}"
    assert "users" not in report, f"the student's page listed the hub's users: {report['users'][:300]}"
    assert "auth_state" not in report, f"the student's page read {other}'s auth state"
    assert "token" not in report and minted_tokens(stack, teacher) == 0, f"a token for the teacher: {report}"
    assert hub_roles(stack, student) == (False, ["user"]), report
    # The page did run, on the student's own host, and the teacher really was logged in to the hub there.
    assert report["page_url"].startswith(stack.user_url(student)), report["page_url"]
    assert len(report["steps"]) >= 6, report
    hub = context.new_page()
    hub.goto(stack.url("/jupyter/hub/home"), timeout=NAVIGATION_TIMEOUT)
    expect(hub.locator("body")).to_contain_text(teacher)


def test_a_students_page_opened_by_another_student_cannot_drive_their_hub_account_or_server(
    stack, new_context, screenshot
):
    attacker, victim = flows.unique_username("stu"), flows.unique_username("victim")
    flows.create_user(stack, attacker)
    flows.create_user(stack, victim)
    victim_home = home_of(stack, victim)
    victim_home.mkdir(parents=True, exist_ok=True)
    (victim_home / "secret.txt").write_text("victim-secret-answers", encoding="utf-8")
    victim_server = start_server(stack, victim)  # the victim's own JupyterLab, running
    attack_url = plant_page(
        stack, attacker, hub_page(stack, me=attacker, victim=victim, other=victim, victimServer=victim_server)
    )

    context = new_context(locale="zh-CN")
    log_in(stack, context, victim)
    lab = context.new_page()  # the victim has their JupyterLab open (its cookie in the browser)
    lab.goto(victim_server + "lab", timeout=NAVIGATION_TIMEOUT)
    expect(lab.locator("#jp-main-dock-panel")).to_be_visible(timeout=90_000)
    report = run_page(context, attack_url, screenshot, "student-page-opened-by-another-student")

    assert not report["xsrf"], f"the page read the victim's hub XSRF token: {report['steps']}"
    assert "token" not in report and minted_tokens(stack, victim) == 0, f"a hub token for the victim: {report}"
    assert "serverXsrf" not in report, f"the page read the victim's server's XSRF cookie: {report['steps']}"
    assert "victim-secret-answers" not in json.dumps(report), f"the page read the victim's file: {report['steps']}"
    assert not (victim_home / "pwned.txt").exists(), f"the page wrote into the victim's home: {report['steps']}"
    assert report["page_url"].startswith(stack.user_url(attacker)), report["page_url"]
    assert len(report["steps"]) >= 8, report


# --- the opt-out: a shared hub origin, where staff hold nothing on the hub ---------------------------------------
def test_on_a_shared_hub_origin_a_students_page_opened_by_staff_gains_nothing_a_student_lacks(
    shared_stack, new_context, screenshot
):
    stack = shared_stack
    student, other, teacher = (flows.unique_username(p) for p in ("stu", "other", "teacher"))
    flows.create_user(stack, student)
    flows.create_user(stack, other)
    flows.create_user(stack, teacher, role="teacher")
    with flows.new_client(stack) as client:
        flows.hub_login(stack, client, other)
    attack_url = plant_page(stack, student, hub_page(stack, me=student, victim=teacher, other=other))
    assert attack_url.startswith(stack.hub_base_url + "/jupyter/user/"), attack_url  # the hub's own origin

    context = new_context(locale="zh-CN")
    log_in(stack, context, teacher)
    report = run_page(context, attack_url, screenshot, "student-page-opened-by-staff-on-a-shared-origin")

    # What a shared origin gives away (the reason prod refuses it without ALLOW_SHARED_HUB_ORIGIN): the page
    # acts as the teacher on the hub...
    assert report["xsrf"], f"expected the page to read the XSRF token on a shared origin: {report['steps']}"
    # ...but the teacher holds no more there than a student: no list, nobody's auth state, nobody made admin.
    assert step(report, "list every user") == 403, report["steps"]
    assert "auth_state" not in report, f"the student's page read {other}'s auth state"
    assert step(report, "make the student a hub admin") == 403, report["steps"]
    assert hub_roles(stack, student) == (False, ["user"]), report
    assert hub_roles(stack, teacher) == (False, ["user"]), hub_roles(stack, teacher)
    # The token it minted is the teacher's own, worth what a student's is: their own account, nobody else's.
    token = report.get("token")
    assert token, report["steps"]
    as_teacher = flows.request("GET", stack.url("/jupyter/hub/api/users"), headers={"Authorization": f"token {token}"})
    assert as_teacher.status_code == 403, as_teacher.text[:300]
    anyone = flows.request(
        "GET", stack.url(f"/jupyter/hub/api/users/{other}"), headers={"Authorization": f"token {token}"}
    )
    assert anyone.status_code == 404, anyone.text[:300]
