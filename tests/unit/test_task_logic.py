"""Task logic, run synchronously (USE_CELERY off). Workers are tested in integration/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from celery_tasks.cert.certificates import issue_certificate
from celery_tasks.pqs.submissions import purge_stale_drafts
from platform_core.tasks.locks import exclusive
from records.models import Certificate, Submission

pytestmark = pytest.mark.django_db


def test_issuing_twice_keeps_the_first_number():
    certificate = Certificate.objects.create(holder="Alan Turing")
    first = issue_certificate.delay(certificate.pk).get()
    issued_at = Certificate.objects.get(pk=certificate.pk).issued_at
    assert issue_certificate.delay(certificate.pk).get() == first
    assert Certificate.objects.get(pk=certificate.pk).issued_at == issued_at


def test_purge_deletes_only_stale_drafts_and_is_idempotent():
    stale = Submission.objects.create()
    fresh = Submission.objects.create()
    submitted = Submission.objects.create(status=Submission.SUBMITTED)
    old = timezone.now() - timedelta(days=40)
    Submission.objects.filter(pk__in=[stale.pk, submitted.pk]).update(updated_at=old)
    assert purge_stale_drafts.delay().get() == 1
    assert purge_stale_drafts.delay().get() == 0
    assert set(Submission.objects.values_list("pk", flat=True)) == {fresh.pk, submitted.pk}


def test_purge_does_nothing_while_another_run_holds_the_lock():
    Submission.objects.create()
    Submission.objects.update(updated_at=timezone.now() - timedelta(days=40))
    with exclusive("pqs.purge_stale_drafts", ttl_seconds=60, eager=True) as mine:
        assert mine
        assert purge_stale_drafts.delay().get() == 0
    assert purge_stale_drafts.delay().get() == 1


def test_wrong_arguments_fail_with_a_clear_error():
    from platform_core.errors import WrongArguments

    # The caller is told before anything is sent…
    with pytest.raises(TypeError, match="takes 1 positional argument but 2 were given"):
        issue_certificate.delay(1, 2)
    # …and a worker given such a message (from a client that does not check) rejects it.
    with pytest.raises(WrongArguments, match="takes 1 positional argument but 2 were given"):
        issue_certificate.apply(args=(1, 2), throw=True)
