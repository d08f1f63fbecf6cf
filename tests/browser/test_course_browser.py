"""A teacher runs an assignment from the admin, in Chromium, on the whole live stack (portal, hub, the local
spawner and the course worker, tests/live.py): the class's page (班级概览) with who has not signed up and whose
server runs, the assignment's table, the zip of hand-ins, a score typed in the table, the others from an
Excel CSV (GB18030), annotated files returned; then the student finds score, comment and files on the
portal, and the files in their running JupyterLab. The grade export opens with the right Chinese names.

The class: ann signs up on the portal, starts JupyterLab and hands in with the 提交 button before the due
time; bob forgets (collected at the due time) and hands in late; cat forgets; dan never started JupyterLab;
eve comes from a roster and has not signed up. Screenshots for the teacher's and the student's guides are
taken on the way (docs/images/)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_staff_tools_browser import log_in
from tests.e2e import flows
from tests.live import Stack

GROUP = "class-a"
NAMES = {"ann": "安娜", "bob": "鲍勃", "cat": "凯特", "dan": "丹", "eve": "伊芙"}
ANSWER = {
    "cells": [
        {
            "cell_type": "markdown",
            "id": "m1",
            "metadata": {},
            "source": "# 作业一：收入分析\n\n**第 1 题** 各省平均收入。",
        },
        {
            "cell_type": "code",
            "id": "c1",
            "execution_count": 1,
            "metadata": {},
            "source": 'df = sql("SELECT provcd, AVG(income) FROM famecon GROUP BY provcd")\ndf',
            "outputs": [
                {
                    "output_type": "execute_result",
                    "execution_count": 1,
                    "metadata": {},
                    "data": {
                        "text/plain": "   provcd  avg\n0      11  52000",
                        "text/html": '<table class="dataframe"><thead><tr><th>provcd</th><th>平均收入</th></tr></thead>'
                        "<tbody><tr><td>11</td><td>52000</td></tr><tr><td>31</td><td>61000</td></tr></tbody></table>",
                    },
                }
            ],
        },  # fmt: skip
        {"cell_type": "markdown", "id": "m2", "metadata": {}, "source": "结论：东部省份平均收入更高。"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
BLANK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

SETUP = """
import io, zipfile, datetime as dt
from django.contrib.auth.models import Group
from django.utils import timezone
from accounts import roster
from accounts.models import User
from course import bundles, jobs
from course.models import Assignment
from portal.config.env import var_dir
group = Group.objects.get_or_create(name={group!r})[0]
for name, full in {names!r}.items():
    user = User.objects.filter(username=name).first()
    if user is None and name != "eve":
        user = User.objects.create_user(username=name, password={password!r})
    if user is not None:
        user.first_name = full
        user.save()
        user.groups.add(group)
roster.import_roster(roster.read("学号,姓名,班级\\neve,伊芙,{group}\\n".encode()))
for name in ("bob", "cat"):  # as their first start of JupyterLab left their homes
    home = var_dir() / "users" / name
    home.mkdir(parents=True, exist_ok=True)
    (home / ".bashrc").write_text("#")
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("作业一/hw1.ipynb", {blank!r})
    archive.writestr("作业一/说明.md", "用 sql() 查询，写出结论。")
now = timezone.now()
hw = Assignment.objects.create(title="作业一", description="收入分析", release_at=now,
                               due_at=now + dt.timedelta(hours=1), late_policy="accept",
                               late_until=now + dt.timedelta(days=2))
hw.groups.add(group)
jobs.hand_out(hw, bundles.from_zip(io.BytesIO(buffer.getvalue()), "作业一.zip"))
print(hw.pk, group.pk)
"""

DUE_PASSES = """
import datetime as dt
from django.utils import timezone
from accounts.models import User
from course import jobs
from course.models import Assignment
hw = Assignment.objects.get(pk={pk})
hw.due_at = timezone.now() - dt.timedelta(seconds=1)
hw.save()
jobs.reschedule(hw)
print("ok")
"""

BOB_LATE = """
from accounts.models import User
from course import jobs
from course.models import Assignment
jobs.request_handin(Assignment.objects.get(pk={pk}), User.objects.get(username="bob"))
print("ok")
"""

COUNTING = """
import json
from course.models import Assignment
hw = Assignment.objects.get(pk={pk})
print(json.dumps({{s.student.username: [s.late, s.auto_collected] for s in hw.latest_submissions().values()}}))
"""


def shell(stack, script: str) -> str:
    return stack.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def counting(stack, pk: int) -> dict:
    return json.loads(shell(stack, COUNTING.format(pk=pk)))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(
        tmp_path_factory.mktemp("course-browser"), worker=True, extra_env={"INVITE_CODES": flows.INVITE_CODE}
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def course_class(stack, browser):
    """The class of the module docstring, with its hand-ins collected. Returns (assignment id, group id, ann's
    httpx client, the homes folder)."""
    homes = Path(stack.env["CFPS_VAR_DIR"]) / "users"
    flows.create_user(stack, "wang", role="teacher")
    ann = flows.new_client(stack)
    flows.signup(stack, ann, "ann")
    flows.wait_for_lab(stack, ann, "ann", ann.get("/jupyter/hub/spawn/ann"))
    pk, group_pk = map(
        int,
        shell(stack, SETUP.format(group=GROUP, names=NAMES, password=flows.PASSWORD, blank=json.dumps(BLANK))).split(),
    )
    api = "/jupyter/user/ann/api/contents/assignments/作业一"
    tokens = [c.value for c in ann.cookies.jar if c.name == "_xsrf" and "/jupyter/user/ann/".startswith(c.path)]
    xsrf = {"X-XSRFToken": tokens[-1] if tokens else ""}
    wait(lambda: ann.get(api + "/hw1.ipynb", headers=xsrf).status_code == 200, 60, "作业一 in ann's running lab")
    wait(lambda: (homes / "bob" / "assignments" / "作业一" / "hw1.ipynb").exists(), 30, "作业一 in bob's home")
    wait(lambda: (homes / "cat" / "assignments" / "作业一" / "hw1.ipynb").exists(), 30, "作业一 in cat's home")
    # ann works in JupyterLab, then hands in on the portal, in her browser, before the due time.
    saved = ann.put(api + "/hw1.ipynb", content=json.dumps({"type": "notebook", "content": ANSWER}), headers=xsrf)
    assert saved.status_code in (200, 201), saved.text
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        log_in(page, stack, "ann", flows.PASSWORD)
        page.goto(stack.url("/course/"))
        page.locator(f"#assignment-{pk}").get_by_role("button", name="提交").click()
        expect(page.locator(".messages")).to_contain_text("作业一")
    finally:
        context.close()
    wait(lambda: "ann" in counting(stack, pk), 30, "ann's hand-in")
    (homes / "bob" / "assignments" / "作业一" / "hw1.ipynb").write_text(json.dumps(BLANK) + "\n")
    (homes / "cat" / "assignments" / "作业一" / "hw1.ipynb").write_text(json.dumps(ANSWER, ensure_ascii=False))
    shell(stack, DUE_PASSES.format(pk=pk))
    wait(lambda: {"bob", "cat"} <= counting(stack, pk).keys(), 30, "bob and cat collected at the due time")
    (homes / "bob" / "assignments" / "作业一" / "答案.txt").write_text("迟交的答案")
    shell(stack, BOB_LATE.format(pk=pk))
    wait(lambda: counting(stack, pk).get("bob") == [True, False], 30, "bob's late hand-in")
    assert counting(stack, pk) == {"ann": [False, False], "bob": [True, False], "cat": [False, True]}
    return pk, group_pk, ann, homes


def test_the_class_overview_shows_sign_ups_servers_and_hand_ins_and_exports_grades(
    stack, course_class, new_context, screenshot, doc_screenshot
):
    pk, group_pk, _ann, _homes = course_class
    page = new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(page, stack, "wang", flows.PASSWORD)
    page.goto(stack.url("/admin/"))
    page.get_by_role("link", name="班级概览").click()
    page.get_by_role("link", name=GROUP).click()
    started = time.perf_counter()
    page.reload()
    took = time.perf_counter() - started
    print(f"\nclass overview in the browser (5 students, a real hub): {took * 1000:.0f} ms")
    expect(page.get_by_role("heading", name=f"班级概览：{GROUP}")).to_be_visible()
    expect(page.get_by_test_id("students")).to_have_text("5")
    expect(page.get_by_test_id("not-signed-up")).to_have_text("1")
    expect(page.get_by_test_id("running")).to_have_text("1")  # ann's JupyterLab, as the hub says
    expect(page.locator('tr[data-username="eve"]')).to_contain_text("尚未注册")
    expect(page.locator('tr[data-username="ann"]')).to_contain_text("运行中")
    summary = page.locator(f'tr[data-assignment="{pk}"]')
    expect(summary).to_contain_text("3 / 5")
    doc_screenshot(page, "teacher-class-overview")
    screenshot(page, "overview")
    # The grade export, as Excel on Chinese Windows opens it.
    page.get_by_label("导出成绩").select_option("gb18030")
    with page.expect_download() as download:
        page.get_by_role("button", name="导出").click()
    raw = Path(download.value.path()).read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("gb18030"))))
    assert rows[0] == ["学号", "姓名", "作业一"]
    assert [r[:2] for r in rows[1:]] == [[n, NAMES[n]] for n in ("ann", "bob", "cat", "dan", "eve")]


def test_a_teacher_grades_from_the_table_and_a_csv_returns_files_and_the_student_sees_them(
    stack, course_class, new_context, screenshot, doc_screenshot, tmp_path
):
    pk, group_pk, ann_client, homes = course_class
    page = new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(page, stack, "wang", flows.PASSWORD)
    page.goto(stack.url(f"/admin/classes/{group_pk}/"))
    page.locator(f'tr[data-assignment="{pk}"]').get_by_role("link", name="作业一").click()
    table = page.locator("#handins-table")
    expect(table.locator("tbody tr")).to_have_count(5)
    expect(table.locator('tr[data-username="bob"]')).to_contain_text("迟交")
    expect(table.locator('tr[data-username="cat"]')).to_contain_text("自动")
    expect(table.locator('tr[data-username="dan"]')).to_contain_text("未提交")

    # A score typed into the table.
    table.locator('tr[data-username="cat"]').get_by_label("cat 的分数").fill("88")
    table.locator('tr[data-username="cat"]').get_by_label("给 cat 的评语").fill("按时完成，结论清楚。")
    page.get_by_role("button", name="保存分数和评语").click()
    expect(page.locator(".messagelist")).to_contain_text("已保存 1 名学生的成绩")
    doc_screenshot(page, "teacher-assignment-table")
    screenshot(page, "table")

    # The notebook, read-only.
    with page.expect_popup(timeout=60_000) as opened:  # the first preview of a process imports nbconvert
        table.locator('tr[data-username="ann"]').get_by_role("link", name="hw1.ipynb").click()
    preview = opened.value
    expect(preview.locator("h1")).to_contain_text("作业一：收入分析")
    expect(preview.locator("table.dataframe")).to_contain_text("平均收入")
    screenshot(preview, "preview")
    preview.close()

    # Every hand-in as one zip.
    with page.expect_download() as download:
        page.locator("#download-zip").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    archive = zipfile.ZipFile(saved)
    assert sorted(archive.namelist()) == [
        "ann_安娜/hw1.ipynb", "ann_安娜/说明.md", "bob_鲍勃/hw1.ipynb", "bob_鲍勃/答案.txt", "bob_鲍勃/说明.md",
        "cat_凯特/hw1.ipynb", "cat_凯特/说明.md",
    ]  # fmt: skip
    assert "".join(json.loads(archive.read("ann_安娜/hw1.ipynb"))["cells"][0]["source"]).startswith("# 作业一")
    listing = subprocess.run(["unzip", "-l", str(saved)], capture_output=True, timeout=30, env={"LANG": "C.UTF-8"})
    assert listing.returncode == 0 and "bob_鲍勃/答案.txt" in listing.stdout.decode()

    # The others' scores from an Excel CSV (GB18030), previewed, then saved.
    page.get_by_role("link", name="导入分数（CSV）").click()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([["学号", "姓名", "分数", "评语"], ["ann", "安娜", "95", "思路清晰，图表规范。"],
                      ["bob", "鲍勃", "70", "迟交，扣 10 分。"]])  # fmt: skip
    page.get_by_label("分数文件").set_input_files(
        {"name": "作业一成绩.csv", "mimeType": "text/csv", "buffer": out.getvalue().encode("gb18030")}
    )
    page.get_by_role("button", name="预览").click()
    expect(page.locator("#scores-summary")).to_contain_text("将修改 2 个")
    expect(page.locator("#scores-preview")).to_contain_text("思路清晰，图表规范。")
    screenshot(page, "scores-preview")
    doc_screenshot(page, "teacher-import-scores")
    page.get_by_role("button", name="保存这些分数").click()
    expect(page.locator(".messagelist")).to_contain_text("2 名学生的成绩有改动")

    # Annotated files back: the downloaded folders, zipped again.
    page.get_by_role("link", name="返还", exact=True).click()
    expect(page.locator("#return-summary")).to_contain_text("3 名已有分数或评语")
    annotated = io.BytesIO()
    with zipfile.ZipFile(annotated, "w") as feedback:
        feedback.writestr("ann_安娜/hw1-批注.ipynb", json.dumps(ANSWER, ensure_ascii=False))
        feedback.writestr("bob_鲍勃/评语.txt", "第 1 题的图缺少标题。")
    page.get_by_label("批改后的文件").set_input_files(
        {"name": "批改.zip", "mimeType": "application/zip", "buffer": annotated.getvalue()}
    )
    screenshot(page, "return")
    page.get_by_role("button", name="返还给学生").click()
    expect(page.locator(".messagelist")).to_contain_text("已返还")
    wait(lambda: (homes / "ann" / "assignments" / "作业一" / "feedback" / "hw1-批注.ipynb").exists(), 30,
         "ann's annotated notebook in her home")  # fmt: skip
    wait(lambda: (homes / "bob" / "assignments" / "作业一" / "feedback" / "评语.txt").exists(), 30, "bob's file")

    # ann, on the portal: her score, the comment and the file; and the file in her running JupyterLab.
    student = new_context(viewport={"width": 1000, "height": 900}).new_page()
    log_in(student, stack, "ann", flows.PASSWORD)
    student.goto(stack.url("/course/"))
    item = student.locator(f"#assignment-{pk}")
    expect(item.locator(".score")).to_have_text("95")
    expect(item.locator(".comment")).to_contain_text("思路清晰，图表规范。")
    link = item.get_by_role("link", name="hw1-批注.ipynb")
    expect(link).to_have_attribute(
        "href",
        stack.url(
            "/jupyter/hub/user-redirect/lab/tree/assignments/%E4%BD%9C%E4%B8%9A%E4%B8%80/feedback/hw1-%E6%89%B9%E6%B3%A8.ipynb"
        ),
    )
    item.locator(".returned").scroll_into_view_if_needed()
    doc_screenshot(student, "student-assignment-returned")
    screenshot(student, "student")
    listing = ann_client.get("/jupyter/user/ann/api/contents/assignments/作业一/feedback")
    assert [f["name"] for f in listing.json()["content"]] == ["hw1-批注.ipynb"]
    # cat has a score but the files went to ann and bob only; dan has nothing returned.
    table_page = page
    table_page.goto(stack.url(f"/admin/course/assignment/{pk}/students/"))
    expect(table_page.locator('tr[data-username="ann"]')).to_contain_text("1 个文件")


def test_a_teacher_warms_up_a_class_and_watches_its_progress(stack, new_context, screenshot, doc_screenshot):
    """预热服务器 on the class's page (the local spawner: warm-ups need no Docker): kim and lee get their servers,
    max, deactivated, is skipped; the progress page shows the bar and each student's result."""
    shell(
        stack,
        "from django.contrib.auth.models import Group\nfrom accounts.models import StaffRole, User\n"
        "g = Group.objects.get_or_create(name='class-w')[0]\n"
        "for name, full, active in (('kim', '金', True), ('lee', '李', True), ('max', '马', False)):\n"
        f"    u = User.objects.create_user(username=name, password={flows.PASSWORD!r}, first_name=full, is_active=active)\n"
        "    u.groups.add(g)\n"
        "t = User.objects.create_user(username='wei', password=" + repr(flows.PASSWORD) + ", is_staff=True)\n"
        "t.groups.add(StaffRole.objects.get(key='teacher').group)\nprint(g.pk)",
    )
    page = new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(page, stack, "wei", flows.PASSWORD)
    page.goto(stack.url("/admin/"))
    page.get_by_role("link", name="班级概览").click()
    page.get_by_role("link", name="class-w").click()
    page.get_by_role("link", name="预热服务器").click()
    expect(page.get_by_test_id("members")).to_have_text("3")
    expect(page.get_by_test_id("to-start")).to_have_text("2")  # max is deactivated
    screenshot(page, "warm-up-form")
    page.get_by_role("button", name="预热服务器").click()
    expect(page.get_by_role("heading", name="预热：class-w")).to_be_visible()
    expect(page.get_by_test_id("progress-text")).to_have_text("3 / 3", timeout=60_000)
    expect(page.get_by_test_id("started")).to_have_text("2")
    expect(page.get_by_test_id("skipped")).to_have_text("1")
    expect(page.locator('tr[data-username="kim"]')).to_contain_text("已启动")
    expect(page.locator('tr[data-username="max"]')).to_contain_text("该账号已停用")
    expect(page.locator("#warm-up-progress")).to_have_attribute("value", "3")
    doc_screenshot(page, "teacher-warm-up")
    for name in ("kim", "lee"):
        state = flows.hub_api(stack, f"/users/{name}").json()["servers"][""]
        assert state["ready"] is True
    assert flows.hub_api(stack, "/users/max").status_code == 404
