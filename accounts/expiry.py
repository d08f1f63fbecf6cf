"""Expiry times typed by staff: a date alone means the END of that day, in the portal's time zone (Beijing
time: settings.TIME_ZONE), never its first second. "Expires 2027-01-31" keeps a code usable all that day.

Used wherever a person types an expiry: invite codes (the admin form, "Generate invite codes",
`create_invite --expires`) and announcements. A date and a time are taken as given.
"""

import datetime

from django import forms
from django.contrib.admin import widgets
from django.utils import formats, timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

END_OF_DAY = datetime.time(23, 59, 59)
DATE_HELP = _("A date without a time means the end of that day (23:59:59, Beijing time).")


def _help(kwargs) -> None:
    kwargs["help_text"] = format_lazy("{} {}", DATE_HELP, kwargs.get("help_text") or "")


def end_of_day(day: datetime.date) -> datetime.datetime:
    """23:59:59 of `day`, in the portal's time zone."""
    return timezone.make_aware(datetime.datetime.combine(day, END_OF_DAY), timezone.get_default_timezone())


def _date_only(value: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        pass
    for pattern in formats.get_format("DATE_INPUT_FORMATS"):
        try:
            return datetime.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    return None


class ExpiryField(forms.DateTimeField):
    """One text box: "2027-01-31" is that day's end; "2027-01-31 12:00" is noon."""

    def __init__(self, **kwargs):
        _help(kwargs)
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and (day := _date_only(value.strip())):
            return end_of_day(day)
        return super().to_python(value)


class SplitExpiryField(forms.SplitDateTimeField):
    """The admin's date and time boxes: with the time left empty, the date's end."""

    def __init__(self, **kwargs):
        _help(kwargs)
        kwargs["widget"] = widgets.AdminSplitDateTime
        super().__init__(**kwargs)

    def compress(self, data_list):
        if data_list and data_list[0] not in self.empty_values and data_list[1] in self.empty_values:
            return end_of_day(data_list[0])
        return super().compress(data_list)
