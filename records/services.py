"""Entry points a view would call: they show enqueueing *after* the commit."""

from django.db import transaction

from records.models import Certificate


def request_certificate(holder: str) -> Certificate:
    with transaction.atomic():
        certificate = Certificate.objects.create(holder=holder)
        # Enqueue after COMMIT, or the worker may look for a row it cannot see yet.
        from celery_tasks.cert.certificates import issue_certificate

        issue_certificate.delay_on_commit(certificate.pk)
    return certificate
