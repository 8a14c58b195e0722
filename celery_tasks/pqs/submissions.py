"""Scoring submissions, and a periodic clean-up of stale drafts."""

from datetime import timedelta

from django.utils import timezone

from platform_core.tasks.locks import exclusive
from records.models import Submission
from sites.pqs.celery_app import pqs_app


@pqs_app.task
def score_submission(submission_id: int) -> int:
    submission = Submission.objects.get(pk=submission_id)
    score = sum(1 for answer in submission.answers if answer)
    Submission.objects.filter(pk=submission_id).update(score=score, status=Submission.SUBMITTED)
    return score


@pqs_app.task(bind=True)
def purge_stale_drafts(self, older_than_days: int = 30) -> int:
    """Delete drafts untouched for ``older_than_days``; safe to run twice or concurrently.

    Idempotent by construction (deleting what is already gone is a no-op); the lock
    with a TTL keeps two overlapping runs from doing the work twice, and expires if
    its holder is killed.
    """
    with exclusive("pqs.purge_stale_drafts", ttl_seconds=300, eager=self.is_eager) as mine:
        if not mine:
            return 0
        cutoff = timezone.now() - timedelta(days=older_than_days)
        deleted, _ = Submission.objects.filter(
            status=Submission.DRAFT, updated_at__lt=cutoff
        ).delete()
        return deleted
