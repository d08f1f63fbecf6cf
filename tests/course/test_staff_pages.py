"""The staff's side of an assignment, in the admin: the table of students (filter, sort, scores and comments in
place), every hand-in as one zip (Windows-safe folder and file names, the UTF-8 flag, read by zipfile and by
`unzip`, written while it is sent), a notebook's preview, scores from a CSV (GB18030 and UTF-8, a preview,
nothing saved on an error), returning annotated files into homes, the grade export, the group's page with 200
students; and who may do what (a TA sees, and gets 403 for any change, even a forged POST).

Hand-ins are real: students' homes of the local spawner, copied by the worker (tests/course/conftest.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import time
import zipfile
from decimal import Decimal
from html.parser import HTMLParser
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from course import handins, jobs
from course.models import Assignment, Grade, Job, JobItem
from course.names import windows_name
from tests.course.test_jobs import NOTEBOOK, assignment, zip_of

User = get_user_model()

ANN_NOTEBOOK = json.dumps(
    {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# 第一题 收入分析\n\n答案见下。"},
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "source": "print(1 + 1)",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "2\n"}],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
    ensure_ascii=False,
)


@pytest.fixture
def graded_class(make_student, make_home, group, run_worker):
    """作业一 of class-a, due an hour ago (late hand-ins until in an hour): ann handed in before the due time,
    bob forgot (collected at the due time) then handed in late, cat forgot, dan never started JupyterLab."""
    now = timezone.now()
    hw = assignment(group, release_at=now - dt.timedelta(hours=3), due_at=now + dt.timedelta(hours=1),
                    late_policy="accept", late_until=now + dt.timedelta(hours=2))  # fmt: skip
    students = {}
    for name in ("ann", "bob", "cat", "dan"):
        students[name] = make_student(name)
        if name != "dan":
            make_home(name)
    run_worker()  # hands it out
    folder = make_home("ann") / "assignments" / "作业一"
    (folder / "hw1.ipynb").write_text(ANN_NOTEBOOK)
    (folder / "数据").mkdir()
    (folder / "数据" / "结果.csv").write_text("收入,1\n")
    (folder / "con.txt").write_text("a reserved name on Windows")
    (folder / "a:b?.txt").write_text("characters Windows refuses")
    jobs.request_handin(hw, students["ann"], now=now - dt.timedelta(hours=2))
    run_worker()
    hw.due_at = now - dt.timedelta(hours=1)  # the due time passes: the others are collected
    hw.save()
    jobs.reschedule(hw)
    run_worker()
    (make_home("bob") / "assignments" / "作业一" / "hw1.ipynb").write_text(NOTEBOOK.decode() + " ")
    jobs.request_handin(hw, students["bob"])  # late
    run_worker()
    hw.refresh_from_db()
    return hw, students


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:course_assignment_{name}", args=args)


def table_rows(response) -> list[str]:
    return re.findall(r'<tr data-username="([^"]+)"', response.content.decode())


# --- the table ---------------------------------------------------------------------------------------------------
def test_the_table_lists_every_student_of_the_groups_with_their_hand_in(client, staff, graded_class):
    hw, _students = graded_class
    client.force_login(staff)
    response = client.get(admin_url("students", hw.pk))
    assert response.status_code == HTTPStatus.OK
    assert table_rows(response) == ["ann", "bob", "cat", "dan"]
    rows = {row.student.username: row for row in response.context["rows"]}
    assert not rows["ann"].counting.late and not rows["ann"].counting.auto_collected
    assert rows["ann"].counting.file_count == 4 and rows["ann"].notebooks == ["hw1.ipynb"]
    assert rows["bob"].counting.late and not rows["bob"].counting.auto_collected  # the late one counts
    assert rows["cat"].counting.auto_collected
    assert rows["dan"].counting is None
    page = response.content.decode()
    assert "ann名" in page and "2 / 4" not in page and 'data-testid="count-handed-in">3 / 4' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "late"}, ["bob"]),
        ({"status": "auto"}, ["cat"]),
        ({"status": "missing"}, ["dan"]),
        ({"status": "in"}, ["ann", "bob", "cat"]),
        ({"q": "CAT"}, ["cat"]),
        ({"q": "bob名"}, ["bob"]),
        ({"o": "-time"}, ["bob", "cat", "ann", "dan"]),  # bob late, cat at the due time, ann two hours before
        ({"o": "size"}, ["cat", "bob", "ann", "dan"]),
        ({"o": "-username"}, ["dan", "cat", "bob", "ann"]),
    ],
)
def test_the_table_filters_and_sorts(client, staff, graded_class, query, expected):
    hw, _students = graded_class
    client.force_login(staff)
    assert table_rows(client.get(admin_url("students", hw.pk), query)) == expected


def test_scores_and_comments_are_saved_from_the_table(client, staff, graded_class):
    hw, students = graded_class
    client.force_login(staff)
    ann, bob = students["ann"].pk, students["bob"].pk
    data = {
        f"{ann}-score": "９２．５",
        f"{ann}-comment": "很好，第二题再想想",
        f"{bob}-score": "",
        f"{bob}-comment": "",
    }
    response = client.post(admin_url("students", hw.pk) + "?status=in", data, follow=True)
    assert "Saved the grade of 1 student." in response.content.decode()
    grade = Grade.objects.get(assignment=hw, student_id=ann)
    assert grade.score == Decimal("92.5") and grade.comment == "很好，第二题再想想" and grade.updated_by == staff
    assert not Grade.objects.filter(student_id=bob).exists()  # an empty row makes no grade
    assert grade.returned_at is None
    assert response.redirect_chain[-1][0].endswith("?status=in")


def test_one_bad_score_saves_nothing_and_is_marked_next_to_its_field(client, staff, graded_class):
    hw, students = graded_class
    client.force_login(staff)
    ann, bob = students["ann"].pk, students["bob"].pk
    data = {f"{ann}-score": "90", f"{ann}-comment": "", f"{bob}-score": "九十", f"{bob}-comment": "x"}
    response = client.post(admin_url("students", hw.pk), data)
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "Nothing was saved" in page and "九十 is not a number." in page
    assert not Grade.objects.exists()
    for bad, message in (("12.345", "at most two decimals"), ("100000", "between -9999.99 and 9999.99")):
        response = client.post(admin_url("students", hw.pk), {f"{bob}-score": bad, f"{bob}-comment": ""})
        assert message in response.content.decode()
    assert not Grade.objects.exists()


def test_a_row_missing_from_the_post_is_left_alone(client, staff, graded_class):
    hw, students = graded_class
    Grade.objects.create(assignment=hw, student=students["cat"], score=70, comment="ok")
    client.force_login(staff)
    ann = students["ann"].pk
    client.post(admin_url("students", hw.pk), {f"{ann}-score": "80", f"{ann}-comment": ""})
    cat = Grade.objects.get(student=students["cat"])
    assert cat.score == 70 and cat.comment == "ok"


# --- who may do what ---------------------------------------------------------------------------------------------
def test_a_ta_sees_the_table_and_downloads_but_every_change_is_refused(client, make_staff, graded_class):
    hw, students = graded_class
    ta = make_staff("zhujiao", "ta")
    client.force_login(ta)
    page = client.get(admin_url("students", hw.pk))
    assert page.status_code == HTTPStatus.OK
    assert f'name="{students["ann"].pk}-score"' not in page.content.decode()  # no inputs
    assert client.get(admin_url("handins_zip", hw.pk)).status_code == HTTPStatus.OK
    assert client.get(reverse("course_overview", args=[students["ann"].groups.get().pk])).status_code == 200
    forged = {f"{students['ann'].pk}-score": "100", f"{students['ann'].pk}-comment": "forged"}
    assert client.post(admin_url("students", hw.pk), forged).status_code == HTTPStatus.FORBIDDEN
    csv_file = SimpleUploadedFile("s.csv", "学号,分数\nann,100\n".encode())
    assert client.post(admin_url("import_scores", hw.pk), {"file": csv_file}).status_code == HTTPStatus.FORBIDDEN
    assert (
        client.post(admin_url("import_scores", hw.pk), {"confirm": "1", "text": "学号,分数\nann,100\n"}).status_code
        == 403
    )
    assert client.get(admin_url("return", hw.pk)).status_code == HTTPStatus.OK  # the page, without its button
    assert client.post(admin_url("return", hw.pk), {}).status_code == HTTPStatus.FORBIDDEN
    assert not Grade.objects.exists() and not Job.objects.filter(kind=Job.Kind.RETURN).exists()


def test_staff_without_course_permissions_get_403_and_students_the_login(client, make_staff, student, graded_class):
    hw, students = graded_class
    nobody = User.objects.create_user("helper", password="x-Cfps-2026", is_staff=True)
    client.force_login(nobody)
    group = students["ann"].groups.get()
    submission = hw.submissions.filter(student=students["ann"]).first()
    urls = [
        admin_url("students", hw.pk),
        admin_url("handins_zip", hw.pk),
        admin_url("handin_zip", hw.pk, submission.pk),
        admin_url("preview", hw.pk, submission.pk) + "?file=hw1.ipynb",
        admin_url("scores_template", hw.pk),
        admin_url("import_scores", hw.pk),
        admin_url("return", hw.pk),
        reverse("course_overview_index"),
        reverse("course_overview", args=[group.pk]),
        reverse("course_grades_export", args=[group.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == HTTPStatus.FORBIDDEN, url
    client.force_login(students["ann"])  # a student: the admin's login page, never the data
    for url in urls:
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND and "/admin/login/" in response["location"], url


# --- the zip -----------------------------------------------------------------------------------------------------
def download(client, url) -> bytes:
    response = client.get(url)
    assert response.status_code == HTTPStatus.OK and response.streaming
    assert response["Content-Type"] == "application/zip"
    return b"".join(response.streaming_content)


def test_all_hand_ins_as_one_zip_with_a_folder_per_student_and_windows_safe_names(
    client, staff, graded_class, tmp_path
):
    hw, _students = graded_class
    client.force_login(staff)
    response = client.get(admin_url("handins_zip", hw.pk))
    assert "filename*=utf-8''" in response["Content-Disposition"] and ".zip" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = sorted(archive.namelist())
    assert "ann_ann名/hw1.ipynb" in names and "ann_ann名/数据/结果.csv" in names
    assert "ann_ann名/_con.txt" in names and "ann_ann名/a_b_.txt" in names
    assert "bob_bob名/hw1.ipynb" in names and "cat_cat名/hw1.ipynb" in names
    assert not [n for n in names if n.startswith("dan")]
    assert archive.read("ann_ann名/hw1.ipynb").decode() == ANN_NOTEBOOK
    assert archive.read("bob_bob名/hw1.ipynb") == NOTEBOOK + b" "  # the late hand-in, the one that counts
    for info in archive.infolist():
        assert bool(info.flag_bits & 0x800) == (not info.filename.isascii()), info.filename
    ann = hw.submissions.get(student__username="ann", status="done")
    handed_in = timezone.localtime(ann.requested_at).timetuple()[:6]
    assert archive.getinfo("ann_ann名/hw1.ipynb").date_time == (*handed_in[:5], handed_in[5] // 2 * 2)  # (2 s steps)
    # Debian's unzip reads it, Chinese names intact.
    (tmp_path / "all.zip").write_bytes(data)
    listing = subprocess.run(
        ["unzip", "-l", str(tmp_path / "all.zip")], capture_output=True, timeout=30, env={"LANG": "C.UTF-8"}
    )
    assert listing.returncode == 0, listing.stderr
    assert "ann_ann名/数据/结果.csv" in listing.stdout.decode()
    out = tmp_path / "unzipped"
    assert subprocess.run(["unzip", "-q", str(tmp_path / "all.zip"), "-d", str(out)], timeout=30).returncode == 0
    assert (out / "ann_ann名" / "数据" / "结果.csv").read_text() == "收入,1\n"


def test_the_zip_of_one_group_and_of_one_student(client, staff, graded_class, group):
    hw, students = graded_class
    other = group.__class__.objects.create(name="class-b")
    students["cat"].groups.add(other)
    client.force_login(staff)
    names = zipfile.ZipFile(io.BytesIO(download(client, admin_url("handins_zip", hw.pk) + f"?group={other.pk}")))
    assert {n.split("/")[0] for n in names.namelist()} == {"cat_cat名"}
    bob = hw.latest_submissions()[students["bob"].pk]
    one = zipfile.ZipFile(io.BytesIO(download(client, admin_url("handin_zip", hw.pk, bob.pk))))
    assert one.namelist() == ["bob_bob名/hw1.ipynb"]


def test_a_large_zip_is_sent_a_piece_at_a_time(client, staff, make_student, make_home, group, run_worker, settings):
    import dataclasses
    import os

    settings.COURSE = dataclasses.replace(settings.COURSE, handin_limit=200 * 1024**2)
    ann = make_student("ann")
    hw = assignment(group, size_limit_mb=200)
    make_home("ann")
    run_worker()
    (make_home("ann") / "assignments" / "作业一" / "big.bin").write_bytes(os.urandom(40 * 1024**2))
    jobs.request_handin(hw, ann)
    run_worker()
    client.force_login(staff)
    response = client.get(admin_url("handins_zip", hw.pk))
    sizes = [len(piece) for piece in response.streaming_content]
    assert sum(sizes) > 40 * 1024**2 and max(sizes) <= 2 * 1024**2, max(sizes)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Lpt1.ipynb", "_Lpt1.ipynb"),
        ("what?.ipynb", "what_.ipynb"),
        ('a<b>c:"d|e*', "a_b_c__d_e_"),
        ("trailing. . ", "trailing"),
        ("笔记 第一周.ipynb", "笔记 第一周.ipynb"),
        ("...", "_"),
    ],
)
def test_names_are_made_safe_for_windows(name, safe):
    assert windows_name(name) == safe


def test_two_names_windows_takes_for_one_stay_apart():
    from course.names import windows_paths

    paths = windows_paths(["A.txt", "a.txt", "sub/x:y", "sub/x_y", "Sub2/CON"])
    assert paths == {"A.txt": "A.txt", "a.txt": "a~2.txt", "sub/x:y": "sub/x_y", "sub/x_y": "sub/x_y~2",
                     "Sub2/CON": "Sub2/_CON"}  # fmt: skip


# --- the preview -------------------------------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.dangerous = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (value and "javascript:" in value.lower()):
                self.dangerous.append((tag, name, value))
            if tag == "img" and name == "src" and value and not value.startswith("data:image/"):
                self.dangerous.append((tag, name, value))


ATTACK = {
    "cells": [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": "# 作业\n<script>document.title='pwned-md'</script>\n<img src=x onerror=\"document.title='pwned-img'\">\n"
            '<a href="javascript:alert(1)">click</a>',
        },  # fmt: skip
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "source": "show()",
            "outputs": [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "text/html": "<b>结果</b><script>fetch('/admin/')</script><img src=/favicon.ico onerror=alert(1)>"
                        "<svg onload=alert(2)></svg>",
                        "text/plain": "x",
                    },
                },
                {"output_type": "display_data", "metadata": {}, "data": {"application/javascript": "alert(3)"}},
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(4)'><script>alert(5)</script></svg>"
                    },
                },
            ],
        },  # fmt: skip
        {"cell_type": "raw", "metadata": {"raw_mimetype": "text/html"}, "source": "<script>alert(6)</script>"},
    ],
    "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_a_notebook_is_shown_read_only_with_no_script_and_a_sandbox(client, staff, graded_class):
    hw, _students = graded_class
    ann = hw.latest_submissions()[User.objects.get(username="ann").pk]
    (ann.path / "hw1.ipynb").write_text(json.dumps(ATTACK, ensure_ascii=False))  # as a student's notebook may be
    client.force_login(staff)
    response = client.get(admin_url("preview", hw.pk, ann.pk), {"file": "hw1.ipynb"})
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Security-Policy"].startswith("sandbox;")
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "allow-same-origin" not in response["Content-Security-Policy"]
    html = response.content.decode()
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags and not parser.dangerous, parser.dangerous
    assert "iframe" not in parser.tags and "svg" not in parser.tags
    assert "<h1" in html and "作业" in html and "<b>结果</b>" in html  # what is harmless is kept
    assert "ann" in html and "read-only" in html


@pytest.mark.parametrize("file", ["../hw1.ipynb", "hw1.ipynb/../../x.ipynb", "数据/结果.csv", "nothing.ipynb", ""])
def test_the_preview_shows_only_a_notebook_of_that_hand_in(client, staff, graded_class, file):
    hw, _students = graded_class
    ann = hw.latest_submissions()[User.objects.get(username="ann").pk]
    client.force_login(staff)
    assert client.get(admin_url("preview", hw.pk, ann.pk), {"file": file}).status_code == HTTPStatus.NOT_FOUND


def test_a_broken_notebook_says_so_instead_of_an_error(client, staff, graded_class):
    hw, _students = graded_class
    ann = hw.latest_submissions()[User.objects.get(username="ann").pk]
    (ann.path / "hw1.ipynb").write_text("{not json")
    client.force_login(staff)
    response = client.get(admin_url("preview", hw.pk, ann.pk), {"file": "hw1.ipynb"})
    assert response.status_code == HTTPStatus.OK and "not a notebook that can be read" in response.content.decode()
    assert response["Content-Security-Policy"].startswith("sandbox;")


# --- scores from a CSV -------------------------------------------------------------------------------------------
def excel_scores(rows, encoding="gb18030", header=("学号", "姓名", "分数", "评语")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def test_scores_from_an_excel_csv_in_gb18030_are_previewed_then_saved(client, staff, graded_class):
    hw, students = graded_class
    Grade.objects.create(assignment=hw, student=students["cat"], score=60, comment="原来的评语")
    client.force_login(staff)
    data = excel_scores([["ann", "安", "95", "思路清晰，图表规范"], ["BOB", "鲍", "78.5", ""], ["cat", "", "", ""]])
    assert "思路清晰".encode("gb18030") in data  # real GB18030 bytes, as Excel on Chinese Windows saves
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    preview = client.post(admin_url("import_scores", hw.pk), {"file": SimpleUploadedFile("成绩.csv", data)})
    page = preview.content.decode()
    assert "Preview: nothing has been saved yet" in page and "2 to change, 1 unchanged, 0 with errors." in page
    assert "思路清晰，图表规范" in page and not Grade.objects.filter(student=students["ann"]).exists()
    text = preview.context["confirm"].initial["text"]
    response = client.post(admin_url("import_scores", hw.pk), {"confirm": "1", "text": text}, follow=True)
    assert "the grades of 2 students changed" in response.content.decode()
    assert Grade.objects.get(student=students["ann"]).comment == "思路清晰，图表规范"
    assert Grade.objects.get(student=students["bob"]).score == Decimal("78.5")
    cat = Grade.objects.get(student=students["cat"])
    assert cat.score == 60 and cat.comment == "原来的评语"  # empty cells change nothing


def test_scores_in_utf8_with_a_bom_and_english_headers_are_read(client, staff, graded_class):
    hw, students = graded_class
    client.force_login(staff)
    data = excel_scores([["ann", "88", "good"]], encoding="utf-8-sig", header=("username", "score", "comment"))
    preview = client.post(admin_url("import_scores", hw.pk), {"file": SimpleUploadedFile("s.csv", data)})
    client.post(admin_url("import_scores", hw.pk), {"confirm": "1", "text": preview.context["confirm"].initial["text"]})
    assert Grade.objects.get(student=students["ann"]).score == 88


def test_a_csv_with_an_unknown_username_is_reported_per_row_and_nothing_is_saved(client, staff, graded_class):
    hw, students = graded_class
    outsider = User.objects.create_user("zed", password="x-Cfps-2026")
    client.force_login(staff)
    data = excel_scores(
        [["ann", "", "90", "好"], ["s9999", "", "80", ""], ["zed", "", "70", ""], ["bob", "", "满分", ""],
         ["ann", "", "91", ""]]
    )  # fmt: skip
    preview = client.post(admin_url("import_scores", hw.pk), {"file": SimpleUploadedFile("s.csv", data)})
    page = preview.content.decode()
    assert "No student has this username." in page and "Not a student of this assignment." in page
    assert "满分 is not a number." in page and "Same username as line 2." in page
    assert preview.context["rows"][0].status == "error"  # errors on top
    assert 'name="confirm"' not in page and "Nothing is saved while there is an error" in page
    # A forged confirmation of the same text saves nothing either.
    forged = client.post(admin_url("import_scores", hw.pk), {"confirm": "1", "text": data.decode("gb18030")})
    assert "Nothing was saved" in forged.content.decode()
    assert not Grade.objects.exists()
    assert outsider.pk


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\r\n\r\n", "The file is empty."),
        ("姓名,分数\n安,90\n".encode(), "The first row must name the columns"),
        (b"\xff\xfe\x00\xd8garbage\x00", "neither UTF-8 nor GB18030"),
    ],
)
def test_a_csv_that_cannot_be_read_says_why_next_to_the_field(client, staff, graded_class, data, message):
    hw, _students = graded_class
    client.force_login(staff)
    response = client.post(admin_url("import_scores", hw.pk), {"file": SimpleUploadedFile("s.csv", data)})
    errors = " ".join(response.context["form"].errors.get("file", []))
    assert message in errors, errors


def test_the_scores_template_lists_every_student_for_excel(client, staff, graded_class):
    hw, students = graded_class
    Grade.objects.create(assignment=hw, student=students["ann"], score=Decimal("95.50"), comment="=1+1 好")
    client.force_login(staff)
    response = client.get(admin_url("scores_template", hw.pk))
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["学号", "姓名", "分数", "评语"]
    assert rows[1] == ["ann", "ann名", "95.5", "'=1+1 好"]
    assert [r[0] for r in rows[1:]] == ["ann", "bob", "cat", "dan"]
    # What Excel saves again imports back unchanged.
    preview = client.post(admin_url("import_scores", hw.pk), {"file": SimpleUploadedFile("t.csv", response.content)})
    assert preview.context["report"].ok and not preview.context["report"].changed


# --- returning ---------------------------------------------------------------------------------------------------
def test_returning_with_annotated_files_puts_them_in_each_home_and_students_see_them(
    client, staff, graded_class, make_home, run_worker
):
    hw, students = graded_class
    Grade.objects.create(assignment=hw, student=students["ann"], score=95, comment="很好")
    Grade.objects.create(assignment=hw, student=students["bob"], score=70, comment="迟交扣分")
    client.force_login(staff)
    # As staff zip the downloaded folders again, one folder around them all; bob's folder renamed to his 学号.
    annotated = zip_of({"作业一_批改/ann_ann名/hw1.ipynb": b"annotated", "作业一_批改/bob/评语.txt": "看批注".encode()})
    response = client.post(admin_url("return", hw.pk), {"file": SimpleUploadedFile("批改.zip", annotated)}, follow=True)
    assert "Returned" in response.content.decode(), response.content.decode()[:2000]
    job = Job.objects.get(kind=Job.Kind.RETURN)
    assert {item.username for item in job.items.all()} == {"ann", "bob"}
    run_worker()
    assert {i.status for i in job.items.all()} == {JobItem.Status.DONE}
    assert (make_home("ann") / "assignments" / "作业一" / "feedback" / "hw1.ipynb").read_bytes() == b"annotated"
    assert (make_home("bob") / "assignments" / "作业一" / "feedback" / "评语.txt").read_text() == "看批注"
    client.force_login(students["ann"])
    page = client.get(reverse("course")).content.decode()
    assert "很好" in page and "95" in page and "hw1.ipynb" in page
    assert "hub/user-redirect/lab/tree/assignments/%E4%BD%9C%E4%B8%9A%E4%B8%80/feedback/hw1.ipynb" in page
    client.force_login(students["cat"])
    assert "Returned" not in client.get(reverse("course")).content.decode()  # nothing for cat


def test_a_returned_zip_with_a_folder_of_no_student_returns_nothing(client, staff, graded_class):
    hw, students = graded_class
    Grade.objects.create(assignment=hw, student=students["ann"], score=95)
    client.force_login(staff)
    annotated = zip_of({"ann_ann名/hw1.ipynb": b"a", "张三_s0001/x.txt": b"?"})
    response = client.post(admin_url("return", hw.pk), {"file": SimpleUploadedFile("f.zip", annotated)})
    errors = str(response.context["form"].errors["file"])
    assert "belong to no student of this assignment: 张三_s0001" in errors
    assert not Grade.objects.filter(returned_at__isnull=False).exists() and not Job.objects.filter(kind="return")
    loose = zip_of({"ann_ann名/hw1.ipynb": b"a", "readme.txt": b"?"})
    response = client.post(admin_url("return", hw.pk), {"file": SimpleUploadedFile("f.zip", loose)})
    assert "readme.txt is not inside a student's folder" in " ".join(response.context["form"].errors["file"])
    traversal = zip_of({"ann_ann名/../../etc/x": b"a"})
    response = client.post(admin_url("return", hw.pk), {"file": SimpleUploadedFile("f.zip", traversal)})
    assert "not a safe file name" in str(response.context["form"].errors["file"])


def test_returning_without_files_shows_the_grades_and_nothing_to_return_is_said(client, staff, graded_class):
    hw, students = graded_class
    client.force_login(staff)
    response = client.post(admin_url("return", hw.pk), {})
    assert "Nothing to return yet" in response.content.decode()
    Grade.objects.create(assignment=hw, student=students["ann"], score=95)
    client.post(admin_url("return", hw.pk), {})
    assert Grade.objects.get().returned_at is not None and not Job.objects.filter(kind="return").exists()


# --- the grade export --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_the_grade_export_of_a_group_opens_with_chinese_names(client, staff, graded_class, group, encoding):
    hw, students = graded_class
    second = Assignment.objects.create(
        title="作业二", release_at=hw.release_at, due_at=hw.due_at + dt.timedelta(days=7)
    )
    second.groups.add(group)
    students["ann"].first_name = "王小明"
    students["ann"].save()
    students["bob"].first_name = '=HYPERLINK("http://evil")'
    students["bob"].save()
    Grade.objects.create(assignment=hw, student=students["ann"], score=Decimal("95.50"))
    Grade.objects.create(assignment=second, student=students["ann"], score=80)
    Grade.objects.create(assignment=hw, student=students["bob"], score=-5)
    teacher = User.objects.create_user("laoshi", password="x-Cfps-2026", is_staff=True)
    teacher.groups.add(group)  # staff in the group are not students
    client.force_login(staff)
    response = client.get(reverse("course_grades_export", args=[group.pk]), {"encoding": encoding})
    assert "filename*=utf-8''class-a" in response["Content-Disposition"]
    raw = response.content
    if encoding == "utf-8-sig":
        assert raw.startswith(b"\xef\xbb\xbf")
    else:
        assert "王小明".encode("gb18030") in raw and not raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode(encoding))))
    assert rows[0] == ["学号", "姓名", "作业一", "作业二"]
    assert rows[1] == ["ann", "王小明", "95.5", "80"]
    assert rows[2] == ["bob", '\'=HYPERLINK("http://evil")', "-5", ""]
    assert [r[0] for r in rows[1:]] == ["ann", "bob", "cat", "dan"]


# --- the group's page --------------------------------------------------------------------------------------------
def test_the_class_overview_shows_members_sign_ups_servers_and_counts(client, staff, graded_class, group):
    from accounts import roster

    hw, students = graded_class
    roster.import_roster(roster.read("学号,姓名\ns2026001,未注册的\n".encode()), extra_group="class-a")
    client.force_login(staff)
    index = client.get(reverse("course_overview_index"))
    assert "class-a" in index.content.decode()
    response = client.get(reverse("course_overview", args=[group.pk]))
    page = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert 'data-testid="not-signed-up">1<' in page and "not signed up yet" in page
    summary = response.context["assignments"][0]
    assert (summary.students, summary.handed_in, summary.late, summary.auto, summary.missing) == (5, 3, 1, 1, 2)
    assert response.context["hub_problem"] and 'data-testid="hub-problem"' in page  # no hub in this test
    assert reverse("admin:course_assignment_students", args=[hw.pk]) + f"?group={group.pk}" in page
    assert reverse("course_grades_export", args=[group.pk]) in page


def test_the_class_overview_of_200_students_and_5_assignments_loads_within_a_second(
    client, staff, group, django_assert_max_num_queries, course_var
):
    now = timezone.now()
    users = User.objects.bulk_create(
        [User(username=f"s{n:04d}", first_name=f"学生{n}", password="!") for n in range(200)]
    )
    group.user_set.add(*users)
    from course.models import Submission

    for k in range(5):
        hw = Assignment.objects.create(title=f"作业{k}", release_at=now - dt.timedelta(days=9),
                                       due_at=now - dt.timedelta(days=k))  # fmt: skip
        hw.groups.add(group)
        Submission.objects.bulk_create(
            [Submission(assignment=hw, student=u, status="done", late=n % 7 == 0, auto_collected=n % 5 == 0,
                        requested_at=now) for n, u in enumerate(users[: 150 + k * 10])]
        )  # fmt: skip
        Grade.objects.bulk_create(
            [Grade(assignment=hw, student=u, score=80 + n % 20) for n, u in enumerate(users[:100])]
        )
    client.force_login(staff)
    url = reverse("course_overview", args=[group.pk])
    # The hub plays no part here: the 200 accounts' queued hub calls (accounts/hub.py) would otherwise be tried by
    # whichever request comes when they are due (about a thousand queries, measured once on MariaDB).
    from accounts.models import PendingHubCall

    PendingHubCall.objects.all().delete()
    client.get(url)  # warm: templates compiled, the hub's address tried once
    timings = []
    for _ in range(3):
        with django_assert_max_num_queries(12):  # the same few, whatever the number of students
            started = time.perf_counter()
            response = client.get(url)
            timings.append(time.perf_counter() - started)
    assert response.status_code == HTTPStatus.OK
    assert response.content.decode().count("<tr data-username=") == 200
    median = sorted(timings)[1]
    print(f"\nclass overview, 200 students, 5 assignments: {median * 1000:.0f} ms (median of 3)")
    assert median < 1.0, timings


def test_the_admin_index_links_the_class_overview_for_staff_with_course_rights(client, make_staff):
    client.force_login(make_staff("wang", "teacher"))
    assert reverse("course_overview_index") in client.get(reverse("admin:index")).content.decode()


def test_student_folder_names_use_username_and_name(db):
    user = User(username="s001", first_name="张三")
    assert handins.student_folder(user) == "s001_张三"
    assert handins.student_folder(User(username="s002")) == "s002"
    assert handins.student_folder(User(username="s003", first_name="王/小:明?")) == "s003_王_小_明_"
