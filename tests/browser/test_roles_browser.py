"""A TA (助教, accounts.roles) in a real browser: the admin offers none of the superuser-only fields, a
superuser's page is read-only, and forms forged in the page itself (is_superuser, is_staff, the 教师 role,
the superuser's password) change nothing in the database.

Runs against the live portal (tests/live.py) after `bootstrap`, in Debian's Chromium; screenshots land in
test-results/<test name>/.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

PASSWORD = "Cfps-analysis-2026"

SETUP = f"""
from django.contrib.auth.models import Group
from accounts.models import StaffRole, User
ta = User.objects.create_user('zhujiao-li', password={PASSWORD!r}, is_staff=True, first_name='李助教')
ta.groups.add(StaffRole.objects.get(key='ta').group)
User.objects.create_superuser('chief', password={PASSWORD!r}, email='chief@example.edu.cn')
student = User.objects.create_user('s2026001', password={PASSWORD!r}, first_name='王伟')
student.groups.add(Group.objects.create(name='经济学1班'))
"""

STATE = """
import json
from django.contrib.auth.models import Group
from accounts.models import StaffRole, User
print(json.dumps({
    "users": {u.username: [u.is_staff, u.is_superuser, u.is_active, u.email, u.password,
                           sorted(g.name for g in u.groups.all()), sorted(p.codename for p in u.user_permissions.all())]
              for u in User.objects.order_by("username")},
    "ids": {u.username: u.pk for u in User.objects.all()},
    "roles": {r.key: r.group_id for r in StaffRole.objects.all()},
    "groups": {g.name: g.pk for g in Group.objects.all()},
}))
"""


@pytest.fixture(scope="module")
def portal(live_portal):
    live_portal.manage("bootstrap")  # makes the two roles, as run.sh does on every start
    live_portal.manage("shell", "-c", SETUP)
    return live_portal


def state(portal) -> dict:
    return json.loads(portal.manage("shell", "-c", STATE).stdout.strip().splitlines()[-1])


FORGE = """async ([url, extra]) => {
  // The page's own form (a real CSRF token and every field), plus fields the TA was not offered.
  const form = document.querySelector("#user_form");
  const data = form ? new FormData(form) : new FormData();
  if (!form) data.set("csrfmiddlewaretoken", document.cookie.match(/csrftoken=([^;]+)/)?.[1] || "");
  for (const [name, value] of Object.entries(extra)) {
    if (Array.isArray(value)) { data.delete(name); value.forEach(v => data.append(name, v)); }
    else data.set(name, value);
  }
  const response = await fetch(url, {method: "POST", body: data, credentials: "same-origin", redirect: "manual"});
  return response.status;
}"""


def test_a_ta_is_offered_no_superuser_field_and_a_forged_form_changes_nothing(portal, page, screenshot):
    before = state(portal)
    ids, roles, groups = before["ids"], before["roles"], before.pop("groups")

    page.goto(portal.url("/accounts/login/?next=/admin/"))
    page.get_by_label("用户名", exact=True).fill("zhujiao-li")
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator("#content-main .app-staff")).to_contain_text("使用情况")  # the TA's admin home: 教师工具
    screenshot(page, "01-ta-admin-home")

    # A student's page: name, e-mail, active, classes; no staff, superuser or permission fields, no roles.
    student_url = portal.url(f"/admin/accounts/user/{ids['s2026001']}/change/")
    page.goto(student_url)
    expect(page.locator("#id_first_name")).to_have_value("王伟")
    for field in ("is_superuser", "is_staff", "user_permissions", "user_permissions_from"):
        expect(page.locator(f"#id_{field}")).to_have_count(0)
    # The admin's two-box widget: what may be chosen in #id_groups_from, what is chosen in #id_groups_to.
    expect(page.locator("#id_groups_to")).to_have_count(1)
    offered = page.locator("#id_groups_from option, #id_groups_to option").all_inner_texts()
    assert "经济学1班" in offered and "教师" not in offered and "助教" not in offered, offered
    expect(page.locator("#user_form")).to_contain_text("该用户所属的班级和小组")
    screenshot(page, "02-ta-edits-a-student")

    # The superuser's page is read-only: no form to submit, no "reset password" button.
    page.goto(portal.url(f"/admin/accounts/user/{ids['chief']}/change/"))
    expect(page.locator("#content")).to_contain_text("chief@example.edu.cn")
    expect(page.locator("input[type=submit]")).to_have_count(0)
    expect(page.get_by_text("重置密码")).to_have_count(0)
    screenshot(page, "03-ta-sees-the-superuser-read-only")

    # Forged from the student's page, which the TA may save: the extra fields are ignored...
    page.goto(student_url)
    its_class = [str(groups["经济学1班"])]
    status = page.evaluate(FORGE, [student_url, {"is_staff": "on", "is_superuser": "on", "groups": its_class}])
    assert status in (0, 302), status  # saved (a redirect; "opaqueredirect" reads as 0), flags ignored
    # ... putting the student or the TA into 教师 is refused ...
    assert page.evaluate(FORGE, [student_url, {"groups": [str(roles["teacher"])]}]) == 200  # form shown again
    own_url = portal.url(f"/admin/accounts/user/{ids['zhujiao-li']}/change/")
    extra = {"username": "zhujiao-li", "is_active": "on", "is_superuser": "on", "groups": [str(roles["teacher"])]}
    assert page.evaluate(FORGE, [own_url, extra]) == 403
    # ... and so is the superuser's password, on Django's own password page.
    password_url = portal.url(f"/admin/accounts/user/{ids['chief']}/password/")
    takeover = {"password1": "Taken-over-2026", "password2": "Taken-over-2026", "usable_password": "true"}
    assert page.evaluate(FORGE, [password_url, takeover]) == 403
    response = page.goto(password_url)
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("无权操作")
    screenshot(page, "04-ta-refused-the-superusers-password-page")

    after = state(portal)
    after.pop("groups")
    assert after == before
