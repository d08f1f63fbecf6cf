"""Roster import (`import_roster` and accounts.roster): encodings, delimiters, per-row reports, idempotence."""

import codecs
import csv
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import roster

User = get_user_model()
pytestmark = pytest.mark.django_db

ROSTER = [
    ["username", "name", "email", "group"],
    ["zhangsan", "张三", "zhangsan@example.edu.cn", "经济学1班"],
    ["lisi", "李四", "", "经济学1班"],
    ["wangwu", "王五", "wangwu@example.edu.cn", "经济学2班"],
]


def csv_text(rows, delimiter=","):
    out = StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def write(tmp_path, rows, encoding="utf-8", delimiter=",", name="roster.csv"):
    path = tmp_path / name
    path.write_bytes(csv_text(rows, delimiter).encode(encoding))
    return path


def run(*args, **options):
    out = StringIO()
    call_command("import_roster", *map(str, args), stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def statuses(report):
    return [(row.username, row.status, row.code) for row in report.rows]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ","), ("gb18030", ","), ("gb18030", "\t"), ("utf-8-sig", "\t"), ("utf-16", "\t")],
)
def test_roster_in_every_excel_encoding_and_delimiter_creates_the_same_accounts(tmp_path, encoding, delimiter):
    run(write(tmp_path, ROSTER, encoding, delimiter))
    zhang = User.objects.get(username="zhangsan")
    assert zhang.get_full_name() == "张三" and zhang.email == "zhangsan@example.edu.cn"
    assert not zhang.has_usable_password()
    assert sorted(User.objects.values_list("username", flat=True)) == ["lisi", "wangwu", "zhangsan"]
    assert sorted(Group.objects.get(name="经济学1班").user_set.values_list("username", flat=True)) == [
        "lisi",
        "zhangsan",
    ]


def test_bom_does_not_end_up_in_the_first_column_name():
    data = codecs.BOM_UTF8 + csv_text(ROSTER).encode()
    assert [row.username for row in roster.read(data)] == ["zhangsan", "lisi", "wangwu"]


def test_a_file_that_starts_like_utf16_but_is_not_is_refused_with_a_reason_not_an_error():
    # A UTF-16 byte-order mark, then a lone surrogate: it once escaped as UnicodeDecodeError (a 500 on the page).
    with pytest.raises(roster.RosterError):
        roster.read(codecs.BOM_UTF16_LE + b"\x00\xd8garbage\x00")


def test_chinese_headers_and_extra_columns_are_understood():
    rows = roster.read(csv_text([["学号", "姓名", "备注", "班级"], ["2026001", "赵六", "x", "A班"]]).encode("gb18030"))
    assert (rows[0].username, rows[0].name, rows[0].groups) == ("2026001", "赵六", ["A班"])


def test_several_groups_in_one_cell_are_split_on_semicolons():
    rows = roster.read(csv_text([["username", "group"], ["zhaoliu", "A班; 项目组；B"]]).encode())
    assert rows[0].groups == ["A班", "项目组", "B"]


def test_a_file_without_a_username_column_fails_with_one_line(tmp_path):
    path = write(tmp_path, [["名字", "邮箱"], ["张三", "a@b.cn"]])
    with pytest.raises(CommandError, match="username"):
        run(path)
    assert not User.objects.exists()


def test_an_empty_file_fails_with_one_line(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CommandError, match="empty"):
        run(path)


def test_bad_rows_are_skipped_with_their_reason_and_the_rest_is_imported():
    rows = roster.parse(
        csv_text(
            [
                ["username", "name", "email", "group"],
                ["good-one", "甲", "", "g"],
                ["张三", "张三", "", "g"],  # not a-z
                ["ab", "", "", "g"],  # too short
                ["admin", "", "", "g"],  # reserved
                ["Good-One", "甲", "", "g"],  # same as line 2 once folded
                ["mail-bad", "", "not-an-email", "g"],
                ["good-two", "乙", "", "g"],
            ]
        )
    )
    report = roster.import_roster(rows)
    assert statuses(report) == [
        ("good-one", "created", ""),
        ("张三", "skipped", "invalid_username"),
        ("ab", "skipped", "invalid_username"),
        ("admin", "skipped", "invalid_username"),
        ("good-one", "skipped", "duplicate"),
        ("mail-bad", "skipped", "invalid_email"),
        ("good-two", "created", ""),
    ]
    assert "line 2" in report.rows[4].message or "2" in report.rows[4].message
    assert sorted(User.objects.values_list("username", flat=True)) == ["good-one", "good-two"]


def test_an_existing_account_with_another_name_or_email_is_taken_by_someone_else():
    User.objects.create_user(username="zhangsan", first_name="张珊", password="x")
    User.objects.create_user(username="wangwu", email="other@example.com", password="x")
    report = roster.import_roster(roster.parse(csv_text(ROSTER)))
    assert statuses(report) == [
        ("zhangsan", "skipped", "taken"),
        ("lisi", "created", ""),
        ("wangwu", "skipped", "taken"),
    ]
    assert not User.objects.get(username="zhangsan").groups.exists()


def test_an_email_of_another_account_is_refused():
    User.objects.create_user(username="someone", email="ZhangSan@example.edu.cn", password="x")
    report = roster.import_roster(roster.parse(csv_text(ROSTER[:2])))
    assert statuses(report) == [("zhangsan", "skipped", "email_taken")]


def test_a_retired_username_is_skipped_instead_of_failing_the_import():
    from accounts.models import RetiredUsername

    RetiredUsername.objects.create(username="zhangsan", reason="deleted")
    report = roster.import_roster(roster.parse(csv_text(ROSTER)))
    assert statuses(report)[0] == ("zhangsan", "skipped", "retired")
    assert sorted(User.objects.values_list("username", flat=True)) == ["lisi", "wangwu"]


def test_staff_accounts_are_never_touched(staff):
    report = roster.import_roster(roster.parse(csv_text([["username", "group"], [staff.username, "g"]])))
    assert statuses(report) == [(staff.username, "skipped", "staff")]
    assert not staff.groups.exists()


def test_an_existing_matching_account_joins_the_groups_and_keeps_its_password():
    user = User.objects.create_user(username="lisi", password="Old-password-123")
    report = roster.import_roster(roster.parse(csv_text(ROSTER)), extra_group="2026春")
    lisi = next(row for row in report.rows if row.username == "lisi")
    assert lisi.status == "updated"
    user.refresh_from_db()
    assert user.check_password("Old-password-123")
    assert user.get_full_name() == "李四"
    assert sorted(user.groups.values_list("name", flat=True)) == ["2026春", "经济学1班"]
    assert user not in report.link_users  # has a password of its own already


def test_second_run_changes_nothing_and_says_so(tmp_path):
    path = write(tmp_path, ROSTER, "gb18030")
    first = run(path, "--group", "全体")
    assert "3 created" in first
    before = list(User.objects.order_by("pk").values_list("username", "password", "first_name", "email"))
    second = run(path, "--group", "全体")
    assert "Nothing to change" in second and "3 unchanged" in second
    assert list(User.objects.order_by("pk").values_list("username", "password", "first_name", "email")) == before
    assert Group.objects.get(name="全体").user_set.count() == 3


def test_dry_run_reports_the_same_and_saves_nothing(tmp_path):
    path = write(tmp_path, ROSTER)
    output = run(path, "--group", "new-group", "--dry-run")
    assert "Dry run" in output and "3 created" in output
    assert not User.objects.exists() and not Group.objects.exists()


def test_links_file_has_one_working_link_per_new_account(tmp_path, client):
    path = write(tmp_path, ROSTER)
    links = tmp_path / "links.csv"
    run(path, "--links", links)
    raw = links.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)  # Excel on Chinese Windows needs it to show the names
    rows = list(csv.DictReader(StringIO(raw.decode("utf-8-sig"))))
    assert [(r["username"], r["name"]) for r in rows] == [("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")]
    from django.conf import settings

    assert all(r["link"].startswith(settings.PUBLIC_URL + "/accounts/set-password/") for r in rows)
    response = client.get(rows[0]["link"].removeprefix(settings.PUBLIC_URL), follow=True)
    assert response.status_code == 200 and response.context["validlink"]


def test_a_rerun_gives_fresh_links_to_accounts_not_used_yet_only(tmp_path):
    path = write(tmp_path, ROSTER)
    run(path)
    lisi = User.objects.get(username="lisi")  # lisi has used the link already
    lisi.set_password("Chosen-password-1")
    lisi.save()
    links = tmp_path / "again.csv"
    output = run(path, "--links", links)
    assert "Wrote 2 set-password link(s)" in output
    names = [r["username"] for r in csv.DictReader(StringIO(links.read_text(encoding="utf-8-sig")))]
    assert names == ["zhangsan", "wangwu"]


def test_a_missing_file_fails_with_one_line(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run(tmp_path / "nope.csv")
