"""Warming up a group from the admin (course/warmup.py, course/admin_views.py): who may, the figures the page shows,
a warm-up at a set time (Beijing time), the memory refusal next to the form, the record; and the two keys.
The warm-up itself, on the real hub and Docker, is tests/docker/test_warm_up.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from audit.models import Event
from course import warmup
from course.models import Job
from portal.config import Config
from portal.config.containers import Limits
from portal.config.env import Env, EnvError

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def cls(make_student, group):
    for name in ("ann", "bob", "cat"):
        make_student(name)
    return group


def test_a_teacher_queues_a_warm_up_at_eight_beijing_time_and_follows_it(client, make_staff, cls):
    teacher = make_staff("wang", "teacher")
    client.force_login(teacher)
    overview = client.get(reverse("course_overview", args=[cls.pk])).content.decode()
    assert reverse("course_warm_up", args=[cls.pk]) in overview
    page = client.get(reverse("course_warm_up", args=[cls.pk]))
    assert page.status_code == HTTPStatus.OK
    text = page.content.decode()
    assert "Servers to start now" in text and 'data-testid="to-start">3<' in text
    tomorrow = timezone.localtime(timezone.now(), BEIJING).date() + dt.timedelta(days=1)
    response = client.post(
        reverse("course_warm_up", args=[cls.pk]), {"run_at_0": tomorrow.isoformat(), "run_at_1": "08:00"}
    )
    job = Job.objects.get(kind=Job.Kind.WARM_UP, group=cls)
    assert response.status_code == HTTPStatus.FOUND and response["location"] == reverse(
        "course_warm_up_progress", args=[job.pk]
    )
    assert job.run_at == dt.datetime.combine(tomorrow, dt.time(8), BEIJING)
    assert job.created_by == teacher and not job.expanded
    event = Event.objects.get(kind="warmup")
    assert event.actor == teacher and event.detail["group"] == cls.name and event.detail["students"] == 3
    progress = client.get(response["location"]).content.decode()
    assert "Waiting: starts at" in progress and f"{tomorrow.isoformat()} 08:00" in progress
    # Asked again before it ran: the new time replaces the old one.
    client.post(reverse("course_warm_up", args=[cls.pk]), {"run_at_0": tomorrow.isoformat(), "run_at_1": "09:00"})
    assert list(Job.objects.filter(group=cls).values_list("status", flat=True).order_by("pk")) == [
        "cancelled",
        "pending",
    ]


def test_a_ta_follows_a_warm_up_but_may_not_start_one(client, make_staff, cls):
    job = warmup.warm_up(cls, run_at=timezone.now() + dt.timedelta(hours=1))
    ta = make_staff("zhujiao", "ta")
    client.force_login(ta)
    assert client.get(reverse("course_warm_up", args=[cls.pk])).status_code == HTTPStatus.FORBIDDEN
    assert client.post(reverse("course_warm_up", args=[cls.pk]), {}).status_code == HTTPStatus.FORBIDDEN
    assert (
        reverse("course_warm_up", args=[cls.pk])
        not in client.get(reverse("course_overview", args=[cls.pk])).content.decode()
    )
    assert client.get(reverse("course_warm_up_progress", args=[job.pk])).status_code == HTTPStatus.OK
    assert Job.objects.filter(kind=Job.Kind.WARM_UP).count() == 1


def test_a_warm_up_that_memory_does_not_take_is_refused_with_the_figures_next_to_the_form(client, make_staff, cls):
    client.force_login(make_staff("wang", "teacher"))
    huge = dataclasses.replace(settings.CONTAINERS, group_limits={cls.name: Limits(mem_bytes=10**15)})
    with override_settings(CONTAINERS=huge, CONFIG=Config(Env({"SPAWNER": "docker"}))):
        response = client.post(reverse("course_warm_up", args=[cls.pk]), {})
    assert response.status_code == HTTPStatus.OK
    text = response.content.decode()
    assert "Not enough memory to warm up 3 servers" in text
    assert "931322.6 GB each" in text and "2793967.7 GB" in text and "available" in text
    assert not Job.objects.exists() and not Event.objects.filter(kind="warmup").exists()


def test_without_a_memory_limit_each_server_counts_as_an_idle_one(cls):
    check = warmup.capacity(cls, kind="local")
    assert (check.count, check.each, check.needed, check.limited) == (3, warmup.IDLE_SERVER_BYTES,
                                                                      3 * warmup.IDLE_SERVER_BYTES, False)  # fmt: skip
    assert check.available == warmup.mem_available() or abs(check.available - warmup.mem_available()) < 512 * 2**20
    with override_settings(CONTAINERS=dataclasses.replace(settings.CONTAINERS, mem_limit=None)):
        assert warmup.capacity(cls, kind="docker").each == warmup.IDLE_SERVER_BYTES
    assert warmup.capacity(cls, kind="swarm").available is None  # the nodes' memory is not known here


def test_a_time_that_has_passed_is_refused_next_to_the_field(client, make_staff, cls):
    client.force_login(make_staff("wang", "teacher"))
    yesterday = timezone.localtime(timezone.now(), BEIJING).date() - dt.timedelta(days=1)
    response = client.post(
        reverse("course_warm_up", args=[cls.pk]), {"run_at_0": yesterday.isoformat(), "run_at_1": "08:00"}
    )
    assert response.status_code == HTTPStatus.OK and "This time has passed" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("env", "concurrency", "grace"),
    [({}, 4, 30), ({"WARMUP_CONCURRENCY": "8", "WARMUP_GRACE_MINUTES": "0"}, 8, 0)],
)
def test_the_warm_up_keys_and_their_defaults(env, concurrency, grace):
    course = Config(Env(env)).course
    assert (course.warmup_concurrency, course.warmup_grace_minutes) == (concurrency, grace)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WARMUP_CONCURRENCY": "0"}, "WARMUP_CONCURRENCY must be 1 or more"),
        ({"HUB_IDLE_TIMEOUT_SECONDS": "600", "WARMUP_GRACE_MINUTES": "66"}, "an hour ahead"),
    ],
)
def test_warm_up_keys_the_hub_cannot_honour_stop_the_start(env, message):
    with pytest.raises(EnvError, match=message):
        Config(Env(env)).course  # noqa: B018
