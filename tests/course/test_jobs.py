"""The course as staff and students use it, on real homes of the local spawner: hand-outs from the admin, the
worker's per-student results, 提交 through the students' page, the due time, returned feedback, and what goes
wrong for one student only (deleted, deactivated, no home yet, too large a folder)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from course import bundles, jobs
from course.models import Assignment, Delivery, Grade, Job, JobItem, Material, Submission
from tests.conftest import PASSWORD

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def zip_of(files: dict[str, bytes], flag_utf8: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def admin_post(client, model: str, data: dict, files=None, pk=None):
    url = reverse(f"admin:course_{model}_change", args=[pk]) if pk else reverse(f"admin:course_{model}_add")
    now = timezone.localtime()
    form = {
        "title": "第二周",
        "description": "",
        "folder": "",
        "release_at_0": now.strftime("%Y-%m-%d"),
        "release_at_1": now.strftime("%H:%M:%S"),
        "server_folder": "",
        "note": "",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **data,
    }
    if files is not None:
        form["files"] = files
    return client.post(url, form)


def material(group, files: dict[str, bytes], title="第二周", by=None) -> Material:
    handout = Material.objects.create(title=title)
    handout.groups.add(group)
    bundle = bundles.from_zip(io.BytesIO(zip_of(files)), "test.zip")
    jobs.hand_out(handout, bundle, by=by)
    return handout


def assignment(group, files=None, **fields) -> Assignment:
    now = timezone.now()
    values = {"title": "作业一", "release_at": now - dt.timedelta(hours=1), "due_at": now + dt.timedelta(hours=1)}
    handout = Assignment.objects.create(**{**values, **fields})
    handout.groups.add(group)
    jobs.hand_out(handout, bundles.from_zip(io.BytesIO(zip_of(files or {"hw1.ipynb": NOTEBOOK})), "hw.zip"))
    return handout


def items(job: Job) -> dict[str, tuple[str, str]]:
    return {item.username: (item.status, item.shown_message) for item in job.items.all()}


# --- hand-outs -----------------------------------------------------------------------------------------------
def test_staff_hand_out_a_zip_from_the_admin_and_every_member_gets_it(
    client, staff, make_student, make_home, group, run_worker
):
    for name in ("ann", "bob"):
        make_student(name)
        make_home(name)
    client.force_login(staff)
    upload = SimpleUploadedFile("week2.zip", zip_of({"week2/第二周.ipynb": NOTEBOOK, "week2/data/收入.csv": b"1,2"}))
    response = admin_post(client, "material", {"groups": [group.pk]}, files=upload)
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:3000]
    run_worker()
    for name in ("ann", "bob"):
        assert Delivery.objects.get(student__username=name).version.number == 1
        folder = make_home(name) / "course" / "第二周"
        assert (folder / "第二周.ipynb").read_bytes() == NOTEBOOK  # the zip's one top folder is dropped
        assert (folder / "data" / "收入.csv").read_bytes() == b"1,2"
    job = Job.objects.get(kind=Job.Kind.HAND_OUT)
    assert job.status == Job.Status.DONE and job.progress()["done"] == 2
    page = client.get(reverse("admin:course_job_change", args=[job.pk]))
    assert "ann" in page.content.decode() and "bob" in page.content.decode()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../evil.py": b"x"}, "not a safe file name"),
        ({"/etc/cron.d/evil": b"x"}, "not a safe file name"),
        ({"a.txt": b"x", "sub/../a.txt": b"y"}, "not a safe file name"),
    ],
)
def test_uploads_with_path_traversal_are_refused_next_to_the_field(client, staff, group, course_var, files, message):
    client.force_login(staff)
    upload = SimpleUploadedFile("bad.zip", zip_of(files))
    response = admin_post(client, "material", {"groups": [group.pk]}, files=upload)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert message in str(errors["files"]), errors
    assert not Material.objects.exists() and not list((course_var / "course" / "bundles").glob("*"))


def test_a_zip_bomb_is_refused_before_anything_is_written(client, staff, group, course_var, settings):
    import dataclasses

    settings.COURSE = dataclasses.replace(settings.COURSE, upload_limit=1024 * 1024, upload_max_files=10)
    client.force_login(staff)
    bomb = SimpleUploadedFile("bomb.zip", zip_of({"zeros.bin": b"\0" * (5 * 1024 * 1024)}))
    response = admin_post(client, "material", {"groups": [group.pk]}, files=bomb)
    assert "larger than 1.0 MB when unpacked" in str(response.context["adminform"].form.errors["files"])
    many = SimpleUploadedFile("many.zip", zip_of({f"f{n}.txt": b"x" for n in range(11)}))
    response = admin_post(client, "material", {"groups": [group.pk]}, files=many)
    assert "more than 10 entries" in str(response.context["adminform"].form.errors["files"])
    assert not list((course_var / "course" / "bundles").glob("*"))


def test_a_zip_with_a_link_is_refused(client, staff, group, course_var):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("passwd")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    client.force_login(staff)
    response = admin_post(
        client, "material", {"groups": [group.pk]}, files=SimpleUploadedFile("l.zip", buffer.getvalue())
    )
    assert "is a link" in str(response.context["adminform"].form.errors["files"])


def test_chinese_names_from_a_windows_zip_without_the_utf8_flag_are_kept(db, course_var):
    # As Windows' own zip stores it: the name in the local code page (GB18030), without the UTF-8 flag.
    raw = "第二周作业.ipynb".encode("gb18030")
    placeholder = b"x" * (len(raw) - len(b".ipynb")) + b".ipynb"
    data = zip_of({placeholder.decode(): NOTEBOOK}).replace(placeholder, raw)
    assert not zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x800
    bundle = bundles.from_zip(io.BytesIO(data))
    assert list(bundle.files) == ["第二周作业.ipynb"]
    assert (bundle.path / "第二周作业.ipynb").read_bytes() == NOTEBOOK


def test_a_second_version_keeps_the_students_edit_and_both_pages_say_so(
    client, make_student, make_home, group, run_worker
):
    ann = make_student("ann")
    home = make_home("ann")
    handout = material(group, {"week2.ipynb": b"v1", "read.md": b"r1"})
    run_worker()
    (home / "course" / "第二周" / "week2.ipynb").write_bytes(b"my work")
    jobs.hand_out(handout, bundles.from_zip(io.BytesIO(zip_of({"week2.ipynb": b"v2", "read.md": b"r2"}))))
    run_worker()
    folder = home / "course" / "第二周"
    assert (folder / "week2.ipynb").read_bytes() == b"my work"
    assert (folder / "week2.new.ipynb").read_bytes() == b"v2"
    assert (folder / "read.md").read_bytes() == b"r2"
    item = JobItem.objects.filter(job__version__number=2).get()
    assert "week2.new.ipynb" in item.shown_message  # what staff see on the job
    client.force_login(ann)
    page = client.get(reverse("course")).content.decode()
    assert "course/第二周/week2.new.ipynb" in page and "Version 2" in page


def test_a_student_without_a_home_gets_the_material_once_their_home_exists(make_student, make_home, group, run_worker):
    make_student("cat")
    material(group, {"week2.ipynb": b"v1"})
    run_worker()
    item = JobItem.objects.get(username="cat")
    assert item.status == JobItem.Status.WAITING and "started JupyterLab" in item.shown_message
    home = make_home("cat")
    run_worker()
    item.refresh_from_db()
    assert item.status == JobItem.Status.DONE
    assert (home / "course" / "第二周" / "week2.ipynb").read_bytes() == b"v1"


def test_a_student_who_joins_the_group_later_gets_the_material(
    make_student, make_home, group, run_worker, django_capture_on_commit_callbacks
):
    material(group, {"week2.ipynb": b"v1"})
    run_worker()
    late = make_student("dan", groups=())
    home = make_home("dan")
    with django_capture_on_commit_callbacks(execute=True):
        group.user_set.add(late)
    run_worker()
    assert (home / "course" / "第二周" / "week2.ipynb").read_bytes() == b"v1"
    with django_capture_on_commit_callbacks(execute=True):
        late.groups.add(Group.objects.create(name="other"))  # nothing new: nothing queued twice
    assert JobItem.objects.filter(username="dan").count() == 1


def test_a_group_with_no_members_is_said_on_the_job(group, run_worker, course_var):
    material(group, {"week2.ipynb": b"v1"})
    run_worker()
    job = Job.objects.get()
    assert job.status == Job.Status.DONE and "no active members" in job.shown_message


def test_a_hand_out_at_a_set_time_waits_for_it(make_student, make_home, group, run_worker):
    make_student("eve")
    home = make_home("eve")
    handout = Material.objects.create(title="later", release_at=timezone.now() + dt.timedelta(seconds=2))
    handout.groups.add(group)
    jobs.hand_out(handout, bundles.from_zip(io.BytesIO(zip_of({"a.txt": b"a"}))))
    run_worker()
    assert not (home / "course" / "later").exists()
    run_worker(until=lambda: (home / "course" / "later" / "a.txt").exists(), timeout=10)


def test_a_deleted_or_deactivated_student_fails_alone_and_the_others_get_it(make_student, make_home, group, run_worker):
    for name in ("ann", "bob", "cat"):
        make_student(name)
        make_home(name)
    handout = material(group, {"week2.ipynb": b"v1"})
    job = handout.jobs.get()
    from course.jobs import expand

    expand(job)  # the students are listed...
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.filter(username="bob").update(is_active=False)  # ...then one is deactivated, one deleted
    User.objects.get(username="cat").delete()
    run_worker()
    result = items(job)
    assert result["ann"][0] == JobItem.Status.DONE
    assert result["bob"] == (JobItem.Status.SKIPPED, "The account is deactivated.")
    assert result["cat"] == (JobItem.Status.FAILED, "The account was deleted.")
    job.refresh_from_db()
    assert job.status == Job.Status.DONE


# --- hand-ins --------------------------------------------------------------------------------------------------
def test_a_student_hands_in_from_the_course_page_and_staff_have_a_trusted_copy(
    client, make_student, make_home, group, run_worker, course_var
):
    ann = make_student("ann")
    home = make_home("ann")
    hw = assignment(group)
    run_worker()
    (home / "assignments" / "作业一" / "hw1.ipynb").write_text("my answers")
    client.force_login(ann)
    page = client.get(reverse("course")).content.decode()
    assert "作业一" in page and "(Beijing time)" in page
    before = timezone.now()
    response = client.post(reverse("course_hand_in", args=[hw.pk]), follow=True)
    assert "being copied" in response.content.decode()
    run_worker()
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.DONE and not submission.late and not submission.auto_collected
    assert before <= submission.requested_at <= timezone.now()
    assert (submission.path / "hw1.ipynb").read_text() == "my answers"
    assert [f["path"] for f in submission.files] == ["hw1.ipynb"]
    page = client.get(reverse("course")).content.decode()
    assert (
        timezone.localtime(submission.requested_at, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        in page
    )


def test_a_hand_in_after_the_due_time_is_late_or_refused_by_the_policy(
    client, make_student, make_home, group, run_worker
):
    ann = make_student("ann")
    make_home("ann")
    now = timezone.now()
    late_ok = assignment(group, title="late-ok", due_at=now - dt.timedelta(minutes=5), late_policy="accept",
                         late_until=now + dt.timedelta(hours=1), release_at=now - dt.timedelta(hours=2))  # fmt: skip
    closed = assignment(
        group, title="closed", due_at=now - dt.timedelta(minutes=5), release_at=now - dt.timedelta(hours=2)
    )
    run_worker()
    client.force_login(ann)
    client.post(reverse("course_hand_in", args=[late_ok.pk]))
    refused = client.post(reverse("course_hand_in", args=[closed.pk]), follow=True).content.decode()
    assert "This assignment is closed" in refused
    run_worker()
    assert Submission.objects.get().late is True
    assert not closed.submissions.exists()


def test_a_folder_over_the_size_limit_is_refused_with_a_clear_message(
    client, make_student, make_home, group, run_worker
):
    ann = make_student("ann")
    home = make_home("ann")
    hw = assignment(group, size_limit_mb=1)
    run_worker()
    (home / "assignments" / "作业一" / "big.bin").write_bytes(b"x" * (2 * 1024 * 1024))
    client.force_login(ann)
    client.post(reverse("course_hand_in", args=[hw.pk]))
    run_worker()
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.FAILED
    assert "2.0 MB, more than the limit of 1.0 MB" in submission.shown_message
    assert "more than the limit" in client.get(reverse("course")).content.decode()
    chinese = client.get(reverse("course"), headers={"accept-language": "zh-hans"}).content.decode()
    assert "超过上限 1.0 MB：未提交任何内容" in chinese and "我的课程" in chinese


def test_a_hand_in_for_an_assignment_not_for_the_student_is_refused(client, make_student, make_home, group):
    outsider = make_student("zed", groups=())
    hw = assignment(group)
    client.force_login(outsider)
    response = client.post(reverse("course_hand_in", args=[hw.pk]), follow=True)
    assert "not for you" in response.content.decode() and not Submission.objects.exists()


def test_at_the_due_time_the_folders_of_students_who_forgot_are_collected(
    client, make_student, make_home, group, run_worker
):
    for name in ("ann", "bob", "cat"):
        make_student(name)
        make_home(name)
    make_student("dan")  # never started JupyterLab
    hw = assignment(group, due_at=timezone.now() + dt.timedelta(seconds=3))
    run_worker()
    homes = {name: make_home(name) / "assignments" / "作业一" for name in ("ann", "bob", "cat")}
    homes["ann"].joinpath("hw1.ipynb").write_text("ann's, handed in")
    jobs.request_handin(hw, hw.students().get(username="ann"))
    homes["bob"].joinpath("hw1.ipynb").write_text("bob's, forgotten")
    run_worker(
        until=lambda: Job.objects.filter(kind=Job.Kind.AUTO_COLLECT, finished_at__isnull=False).exists(), timeout=15
    )
    latest = {s.student.username: s for s in hw.latest_submissions().values()}
    assert not latest["ann"].auto_collected
    assert latest["bob"].auto_collected and latest["bob"].requested_at == hw.due_at and not latest["bob"].late
    assert (latest["bob"].path / "hw1.ipynb").read_text() == "bob's, forgotten"
    assert latest["cat"].auto_collected
    auto = items(Job.objects.get(kind=Job.Kind.AUTO_COLLECT))
    assert auto["ann"][0] == JobItem.Status.SKIPPED and "before the due time" in auto["ann"][1]
    assert auto["dan"][0] == JobItem.Status.SKIPPED and "never started JupyterLab" in auto["dan"][1]


def test_returned_feedback_lands_in_the_home_and_the_page_shows_score_and_comment_only_once_returned(
    client, staff, make_student, make_home, group, run_worker
):
    ann = make_student("ann")
    home = make_home("ann")
    hw = assignment(group)
    run_worker()
    Grade.objects.create(assignment=hw, student=ann, score="92.5", comment="很好")
    client.force_login(ann)
    assert "很好" not in client.get(reverse("course")).content.decode()
    feedback = bundles.from_zip_folders(io.BytesIO(zip_of({"ann_安/批改.ipynb": NOTEBOOK})))
    jobs.return_feedback(hw, by=staff, files={ann: feedback["ann_安"]})
    run_worker()
    assert (home / "assignments" / "作业一" / "feedback" / "批改.ipynb").read_bytes() == NOTEBOOK
    page = client.get(reverse("course")).content.decode()
    assert "很好" in page and "92.5" in page and "批改.ipynb" in page


# --- the worker ------------------------------------------------------------------------------------------------
def test_an_item_left_running_by_a_worker_that_died_is_done_again(make_student, make_home, group, run_worker):
    make_student("ann")
    home = make_home("ann")
    handout = material(group, {"week2.ipynb": b"v1"})
    job = handout.jobs.get()
    jobs.expand(job)
    job.items.update(status=JobItem.Status.RUNNING, worker="gone-host:1:dead", attempts=1)
    run_worker()
    assert items(job)["ann"][0] == JobItem.Status.DONE
    assert (home / "course" / "第二周" / "week2.ipynb").exists()


def test_an_item_that_killed_the_worker_three_times_fails_and_the_others_go_on(
    make_student, make_home, group, run_worker
):
    for name in ("ann", "bob"):
        make_student(name)
        make_home(name)
    job = material(group, {"week2.ipynb": b"v1"}).jobs.get()
    jobs.expand(job)
    job.items.filter(username="ann").update(status=JobItem.Status.RUNNING, worker="gone-host:1:dead", attempts=3)
    run_worker()
    result = items(job)
    assert result["ann"][0] == JobItem.Status.FAILED and "stopped 3 times" in result["ann"][1]
    assert result["bob"][0] == JobItem.Status.DONE


def test_retry_does_the_failed_students_again(client, make_student, make_home, group, run_worker):
    ann = make_student("ann")
    make_home("ann")
    hw = assignment(group, size_limit_mb=1)
    run_worker()
    big = make_home("ann") / "assignments" / "作业一" / "big.bin"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    jobs.request_handin(hw, ann)
    run_worker()
    job = Job.objects.get(kind=Job.Kind.COLLECT)
    assert items(job)["ann"][0] == JobItem.Status.FAILED
    big.unlink()
    assert jobs.retry(job) == 1
    run_worker()
    assert items(job)["ann"][0] == JobItem.Status.DONE
    assert Submission.objects.get().status == Submission.Status.DONE


def test_the_course_page_needs_a_login(client):
    response = client.get(reverse("course"))
    assert response.status_code == HTTPStatus.FOUND and "/accounts/login/" in response["location"]
    assert PASSWORD  # (the students above log in with it)


def test_a_renamed_student_gets_everything_again_in_the_new_home(
    make_student, make_home, group, run_worker, django_capture_on_commit_callbacks
):
    ann = make_student("ann")
    make_home("ann")
    material(group, {"week2.ipynb": b"v1"})
    run_worker()
    new_home = make_home("ann-renamed")
    with django_capture_on_commit_callbacks(execute=True):
        ann.username = "ann-renamed"
        ann.save()
    run_worker()
    assert (new_home / "course" / "第二周" / "week2.ipynb").read_bytes() == b"v1"
