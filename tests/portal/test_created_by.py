"""Who added an object in the admin (portal/admin_site.py CreatedByStaffMixin): recorded on creation from the
session, never taken from the form, and shown read-only on the object's page."""

from http import HTTPStatus

from django.contrib.auth import get_user_model
from django.urls import reverse

from course.models import Material
from staff.models import Announcement


def shows_the_author_read_only(page) -> bool:
    adminform = page.context["adminform"]
    shown = [name for _, options in adminform.fieldsets for name in options["fields"]]
    return (
        "created_by" in shown
        and "created_by" in adminform.readonly_fields
        and 'name="created_by"' not in (page.content.decode())
    )


def test_an_announcement_records_its_author_whatever_the_form_says(client, staff):
    other = get_user_model().objects.create_user(username="someone-else", password="x")
    client.force_login(staff)
    form = {"message": "机房周五停电", "level": "info", "expires_at_0": "", "expires_at_1": "", "is_active": "on"}
    response = client.post(reverse("admin:staff_announcement_add"), {**form, "created_by": other.pk})
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    announcement = Announcement.objects.get()
    assert announcement.created_by == staff

    url = reverse("admin:staff_announcement_change", args=[announcement.pk])
    assert shows_the_author_read_only(client.get(url))
    client.post(url, {**form, "message": "改到周六", "created_by": other.pk})
    announcement.refresh_from_db()
    assert (announcement.message, announcement.created_by) == ("改到周六", staff)  # an edit keeps the author


def test_a_handouts_page_shows_who_created_it(client, staff):
    material = Material.objects.create(title="第二周", created_by=staff)
    client.force_login(staff)
    page = client.get(reverse("admin:course_material_change", args=[material.pk]))
    assert page.status_code == HTTPStatus.OK
    assert shows_the_author_read_only(page)
