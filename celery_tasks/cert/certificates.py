"""Issuing a certificate: the task gets the row's ID, never the object."""

from django.utils import timezone

from records.models import Certificate
from sites.cert.celery_app import cert_app


@cert_app.task
def issue_certificate(certificate_id: int) -> str:
    """Give the certificate a number; running it again changes nothing (idempotent)."""
    certificate = Certificate.objects.get(pk=certificate_id)
    if not certificate.issued_at:
        certificate.number = f"CERT-{certificate.pk:08d}"
        certificate.issued_at = timezone.now()
        certificate.save(update_fields=["number", "issued_at"])
    return certificate.number
