"""How long the record keeps an entry: AUDIT_RETENTION_DAYS from the key table, deleted by the course worker at its
start and once a day after, or at once by `manage.py prune_audit`; idempotent, and the prune itself is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit import retention
from audit.kinds import Kind
from audit.models import Event
from audit.records import record
from portal.config import Config
from portal.config.env import Env, EnvError
from tests.audit.conftest import entries, only

pytestmark = pytest.mark.django_db


def aged(days: float, kind=Kind.LOGIN) -> Event:
    event = record(kind, subject="someone")
    Event.objects.filter(pk=event.pk).update(time=timezone.now() - timedelta(days=days))
    return event


def test_the_retention_is_a_table_key_of_a_year_by_default():
    assert Config(Env({})).audit.retention_days == 365
    assert Config(Env({"AUDIT_RETENTION_DAYS": "30"})).audit.retention_days == 30
    with pytest.raises(EnvError, match="AUDIT_RETENTION_DAYS must be 1 or more"):
        Config(Env({"AUDIT_RETENTION_DAYS": "0"})).audit  # noqa: B018


def test_prune_deletes_what_is_older_than_the_retention_and_says_so_in_the_record(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    old, older = aged(31), aged(400)
    kept = aged(29)
    assert retention.prune() == 2
    assert not Event.objects.filter(pk__in=[old.pk, older.pk]).exists() and Event.objects.filter(pk=kept.pk).exists()
    pruned = only(Kind.RECORD_PRUNED)
    assert pruned.detail["deleted"] == 2 and pruned.detail["days"] == 30 and pruned.actor is None
    # Idempotent: nothing more to delete, nothing more recorded.
    assert retention.prune() == 0 and len(entries(Kind.RECORD_PRUNED)) == 1


def test_prune_works_in_batches_through_a_long_record(settings, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 7)
    for _ in range(20):
        aged(settings.AUDIT_RETENTION_DAYS + 1)
    assert retention.prune() == 20 and Event.objects.exclude(kind=Kind.RECORD_PRUNED).count() == 0


def test_the_command_says_what_it_would_delete_then_deletes_it(settings, capsys):
    settings.AUDIT_RETENTION_DAYS = 10
    aged(11)
    aged(12)
    call_command("prune_audit", "--dry-run")
    assert "Would delete 2 entries older than 10 days" in capsys.readouterr().out
    assert Event.objects.count() == 2
    call_command("prune_audit")
    assert "Deleted 2 entries older than 10 days" in capsys.readouterr().out
    call_command("prune_audit")
    assert "Deleted 0 entries" in capsys.readouterr().out


def test_the_course_worker_prunes_at_its_start_and_then_once_a_day(homes, settings):
    from course import worker

    settings.AUDIT_RETENTION_DAYS = 5
    first = aged(6)
    running = worker.CourseWorker(homes, interval=0.05)
    running.run(until_idle=True)
    assert not Event.objects.filter(pk=first.pk).exists()
    second = aged(6)
    running.housekeep()  # within the day: nothing
    assert Event.objects.filter(pk=second.pk).exists()
    running.last_housekeeping -= worker.HOUSEKEEPING  # a day later
    running.housekeep()
    assert not Event.objects.filter(pk=second.pk).exists()
    assert len(entries(Kind.RECORD_PRUNED)) == 2
