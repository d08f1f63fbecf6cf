"""An expiry typed as a date means the end of that day in Beijing time (settings.TIME_ZONE), not its first
second, at every place staff type one: the invite code form, "Generate invite codes", `create_invite
--expires`, announcements. A date with a time is taken as given."""

from datetime import date, datetime
from http import HTTPStatus
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.expiry import end_of_day
from accounts.models import InviteCode
from staff.models import Announcement

pytestmark = pytest.mark.django_db
BEIJING = ZoneInfo("Asia/Shanghai")
LAST_SECOND = datetime(2027, 1, 31, 23, 59, 59, tzinfo=BEIJING)


def test_the_portal_runs_on_beijing_time():
    assert settings.TIME_ZONE == "Asia/Shanghai"
    assert end_of_day(date(2027, 1, 31)) == LAST_SECOND


def test_the_invite_form_takes_a_date_without_a_time_as_the_end_of_that_day(client, staff):
    client.force_login(staff)
    add = reverse("admin:accounts_invitecode_add")
    page = client.get(add).content.decode()
    assert "23:59:59" in page  # the help text says what a date alone means
    response = client.post(add, {"code": "WEEK1", "expires_at_0": "2027-01-31", "expires_at_1": "", "is_active": "on"})
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    assert InviteCode.objects.get(code="WEEK1").expires_at == LAST_SECOND


def test_the_invite_form_keeps_a_time_that_is_given(client, staff):
    client.force_login(staff)
    data = {"code": "NOON", "expires_at_0": "2027-01-31", "expires_at_1": "12:00", "is_active": "on"}
    assert client.post(reverse("admin:accounts_invitecode_add"), data).status_code == HTTPStatus.FOUND
    assert InviteCode.objects.get(code="NOON").expires_at == datetime(2027, 1, 31, 12, 0, tzinfo=BEIJING)


def test_the_invite_form_still_refuses_a_time_without_a_date(client, staff):
    client.force_login(staff)
    data = {"code": "ODD", "expires_at_0": "", "expires_at_1": "12:00", "is_active": "on"}
    response = client.post(reverse("admin:accounts_invitecode_add"), data)
    assert response.status_code == HTTPStatus.OK and "expires_at" in response.context["adminform"].form.errors


@pytest.mark.parametrize("typed", ["2027-01-31", "2027/01/31", " 2027-01-31 "])
def test_generating_codes_with_a_date_makes_them_last_all_that_day(client, staff, typed):
    client.force_login(staff)
    response = client.post(
        reverse("admin:accounts_invitecode_generate"), {"count": "3", "max_uses": "1", "expires_at": typed}
    )
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    assert set(InviteCode.objects.values_list("expires_at", flat=True)) == {LAST_SECOND}


def test_generating_codes_with_a_date_and_time_keeps_the_time(client, staff):
    client.force_login(staff)
    client.post(reverse("admin:accounts_invitecode_generate"), {"count": "1", "expires_at": "2027-01-31 08:00"})
    assert InviteCode.objects.get().expires_at == datetime(2027, 1, 31, 8, 0, tzinfo=BEIJING)


def test_create_invite_expires_at_the_end_of_the_given_day():
    out = StringIO()
    call_command("create_invite", "--expires", "2027-01-31", stdout=out, stderr=StringIO())
    assert InviteCode.objects.get().expires_at == LAST_SECOND


def test_a_code_expiring_today_still_works_tonight_and_not_after_midnight(make_invite):
    today = timezone.localdate()
    invite = make_invite(code="TONIGHT", expires_at=end_of_day(today))
    late_tonight = end_of_day(today) - timezone.timedelta(minutes=1)
    assert InviteCode.objects.usable(late_tonight).filter(pk=invite.pk).exists()
    assert not InviteCode.objects.usable(end_of_day(today) + timezone.timedelta(seconds=1)).exists()


def test_an_announcement_given_a_date_shows_until_that_day_ends(client, staff):
    client.force_login(staff)
    response = client.post(
        reverse("admin:staff_announcement_add"),
        {"message": "周五维护", "level": "info", "expires_at_0": "2027-01-31", "expires_at_1": "", "is_active": "on"},
    )
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    assert Announcement.objects.get().expires_at == LAST_SECOND
