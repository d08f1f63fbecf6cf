"""Fixtures for the course tests: a private var/ (hand-outs, hand-ins and the local spawner's homes live there),
the worker's view of homes as the local spawner makes them, and a worker run in this process until nothing is
due (the worker as a process of its own, killed and started again, is in test_worker_process.py)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings

from portal.config import Config
from portal.config.env import Env
from tests.conftest import PASSWORD


@pytest.fixture
def course_var(private_var_dir) -> Path:
    course = dataclasses.replace(settings.COURSE, root=private_var_dir / "course")
    with override_settings(COURSE=course):
        yield private_var_dir


@pytest.fixture
def homes(course_var):
    from userspace.homes import Homes

    return Homes(Config(Env({"SPAWNER": "local"})))


@pytest.fixture
def run_worker(homes, monkeypatch):
    """Run the worker in this process until nothing is due (or `until()` holds, waiting up to `timeout` s)."""
    from course import worker

    monkeypatch.setattr(worker, "WAITING_CHECK", 0)

    def run(until=None, timeout: float = 20):
        w = worker.CourseWorker(homes, interval=0.05)
        if until is None:
            w.run(until_idle=True)
            return w
        deadline = time.monotonic() + timeout
        w.start()
        while not until():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            if not w.step():
                time.sleep(0.05)
        w.run(until_idle=True)
        return w

    return run


@pytest.fixture
def make_home(course_var):
    """A student's home as the local spawner leaves it after a first start (not empty)."""

    def make(username: str) -> Path:
        home = course_var / "users" / username
        home.mkdir(parents=True, exist_ok=True)
        (home / ".bashrc").write_text("# home\n")
        return home

    return make


@pytest.fixture
def group(db):
    return Group.objects.create(name="class-a")


@pytest.fixture
def make_student(db, group):
    def make(username: str, groups=(group,), home: bool = True, make_home=None):
        user = get_user_model().objects.create_user(username=username, password=PASSWORD, first_name=f"{username}名")
        for g in groups:
            user.groups.add(g)
        return user

    return make


@pytest.fixture(autouse=True)
def _english_pages(client):
    """Pages in English, so assertions read as the source does (one test asks for the Chinese page itself)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
