"""Hand-outs reach students who arrive after them: a student added to a group (from either side of the
membership), a new account (hand-outs for everyone) and a reactivated one get, once the change is saved,
what they should have by now (course.jobs.deliver_to_member; each hand-out at most once). A renamed account
has a new, empty home (homes are named after the username): what was delivered to the old one is forgotten
and everything is handed out again.

Every job made, whichever path made it (a hand-out, the collection at the due time, a student's 提交, returned
feedback, a late member's hand-out), is in the record of who did what; course/jobs.py records when it ends."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from audit.kinds import Kind
from audit.records import record
from course import jobs
from course.models import Job

User = get_user_model()


def _later(users) -> None:
    ids = [user.pk for user in users]
    transaction.on_commit(lambda: [jobs.deliver_to_member(user) for user in User.objects.filter(pk__in=ids)])


@receiver(m2m_changed, sender=User.groups.through)
def _joined_groups(sender, instance, action, reverse, pk_set, **kwargs):
    if action != "post_add" or not pk_set:
        return
    if isinstance(instance, Group):  # group.user_set.add(...)
        _later(User.objects.filter(pk__in=pk_set))
    else:
        _later([instance])


@receiver(post_save, sender=User)
def _new_reactivated_or_renamed(sender, instance, created, update_fields=None, **kwargs):
    from course.models import Delivery

    if not instance.is_active:
        return
    previous = getattr(instance, "_previous", None) or {}
    renamed = previous.get("username") not in (None, instance.username)
    if renamed:
        Delivery.objects.filter(student=instance).delete()
    if created or renamed or previous.get("is_active") is False:
        _later([instance])


@receiver(post_save, sender=Job)
def _job_queued(sender, instance, created, **kwargs):
    if created:
        record(
            Kind.COURSE_JOB_QUEUED,
            actor=instance.created_by,
            job=instance.pk,
            job_kind=instance.kind,
            handout=instance.handout.title if instance.handout_id else None,
            version=instance.version.number if instance.version_id else None,
            run_at=instance.run_at,
        )
