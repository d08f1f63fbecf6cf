"""create_invite --count / --group / --create-group, and export_invites (CSV out of the system)."""

import codecs
import csv
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import InviteCode

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_count_makes_that_many_codes_each_alone_on_its_own_line():
    lines = run("create_invite", "--count", "30", "--max-uses", "1").strip().splitlines()
    codes = lines[-30:]
    assert sorted(codes) == sorted(InviteCode.objects.values_list("code", flat=True))
    assert len(set(codes)) == 30


def test_count_with_quiet_verbosity_prints_only_the_codes():
    assert len(run("create_invite", "--count", "5", verbosity=0).strip().splitlines()) == 5


def test_an_unknown_group_is_refused_with_one_line_and_nothing_is_made():
    Group.objects.create(name="class-a")
    with pytest.raises(CommandError) as exc:
        run("create_invite", "--group", "clas-a")
    assert "--create-group" in str(exc.value) and "\n" not in str(exc.value)
    assert not InviteCode.objects.exists() and Group.objects.count() == 1


def test_an_existing_group_is_used_and_create_group_makes_a_new_one():
    Group.objects.create(name="class-a")
    run("create_invite", "--group", "class-a")
    run("create_invite", "--group", "class-b", "--create-group")
    assert sorted(InviteCode.objects.values_list("group__name", flat=True)) == ["class-a", "class-b"]


@pytest.mark.parametrize(
    ("args", "message"), [(["--count", "0"], "--count"), (["--count", "2", "--code", "X1"], "--code")]
)
def test_bad_count_arguments_fail_with_one_line(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_invite", *args)


@pytest.fixture
def codes(db):
    team = Group.objects.create(name="经济学1班")
    return {
        "fresh": InviteCode.objects.create(code="FRESH1", max_uses=30, group=team, note="秋季"),
        "old": InviteCode.objects.create(code="OLD1", group=team, expires_at=timezone.now() - timedelta(days=1)),
        "other": InviteCode.objects.create(code="OTHER1"),
    }


def rows(text):
    return list(csv.DictReader(StringIO(text)))


def test_export_lists_every_code_with_status_and_signup_address(codes):
    exported = {row["code"]: row for row in rows(run("export_invites"))}
    assert set(exported) == {"FRESH1", "OLD1", "OTHER1"}
    assert exported["FRESH1"]["status"] == "usable" and exported["OLD1"]["status"] == "expired"
    assert exported["FRESH1"]["group"] == "经济学1班" and exported["FRESH1"]["max_uses"] == "30"
    assert exported["FRESH1"]["signup_url"].endswith("/accounts/signup/")


def test_export_filters_by_group_and_usable(codes):
    assert [r["code"] for r in rows(run("export_invites", "--group", "经济学1班", "--usable"))] == ["FRESH1"]


def test_export_to_a_file_writes_a_bom_for_excel(codes, tmp_path):
    target = tmp_path / "codes.csv"
    run("export_invites", "--output", str(target))
    raw = target.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8) and len(rows(raw.decode("utf-8-sig"))) == 3


def test_export_of_an_unknown_group_fails_with_one_line(codes):
    with pytest.raises(CommandError, match="no group"):
        run("export_invites", "--group", "nope")
