"""The example tasks, run by real workers, leave their real effects."""

import csv
import http.server
import threading
from pathlib import Path

import pytest
import redis
from django.db import transaction

from harness.processes import wait_for
from platform_core.broker import keys
from records.models import ApiKey, Certificate, Partner, Report, Submission

pytestmark = pytest.mark.django_db(transaction=True)


def test_certificate_is_issued_only_after_the_transaction_commits(workers):
    from records.services import request_certificate

    with transaction.atomic():
        certificate = request_certificate("Ada Lovelace")
        # Still inside the outer transaction: nothing was sent, so no worker raced us.
        assert Certificate.objects.get(pk=certificate.pk).issued_at is None
    issued = wait_for(
        lambda: Certificate.objects.filter(pk=certificate.pk, issued_at__isnull=False).first(),
        20,
        "the cert worker to issue the certificate",
    )
    assert issued.number == f"CERT-{certificate.pk:08d}"


def test_submission_is_scored_on_pqs(workers):
    from celery_tasks.pqs.submissions import score_submission

    submission = Submission.objects.create(answers=["a", "", "c"])
    assert score_submission.delay(submission.pk).get(timeout=20) == 2
    submission.refresh_from_db()
    assert (submission.score, submission.status) == (2, Submission.SUBMITTED)


def test_api_calls_are_counted_without_losing_increments(workers):
    from celery_tasks.api.usage import record_api_call

    key = ApiKey.objects.create(label="mobile app")
    results = [record_api_call.delay(key.pk) for _ in range(20)]
    for result in results:
        result.get(timeout=20)
    key.refresh_from_db()
    assert key.calls == 20


class _FlakyPartnerService(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first requests, then 204: a partner having a bad minute."""

    failures_left = 2
    requests = 0

    def do_PUT(self):
        cls = type(self)
        cls.requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_partner_sync_retries_with_backoff_until_the_partner_answers(workers, partner_port):
    from celery_tasks.green_door.partners import sync_partner

    server = http.server.ThreadingHTTPServer(("127.0.0.1", partner_port), _FlakyPartnerService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        partner = Partner.objects.create(name="Green Door Ltd")
        # Two 503s: retried after back-off (2 s, 4 s caps with jitter), then 204.
        assert sync_partner.delay(partner.pk).get(timeout=60) == 204
    finally:
        server.shutdown()
    partner.refresh_from_db()
    assert partner.sync_attempts == 3
    assert partner.synced_at is not None
    assert _FlakyPartnerService.requests == 3


def test_long_report_writes_its_file_and_reports_progress(workers, redis_url):
    from celery_tasks.long_running.reports import build_certificate_report

    Certificate.objects.bulk_create(Certificate(holder=f"holder {i}") for i in range(120))
    report = Report.objects.create(row_delay_ms=15)  # ~2 s in all
    result = build_certificate_report.delay(report.pk)
    progress = wait_for(
        lambda: result.state == "PROGRESS" and result.info, 20, "a PROGRESS state", 0.05
    )
    assert progress["total"] == 120
    assert 0 < progress["done"] <= 120
    # While it runs, its message is held under the long-running worker's lease.
    broker = redis.Redis.from_url(redis_url)
    held = {
        key.decode(): b"".join(broker.lrange(key, 0, -1))
        for key in broker.keys(f"{keys.QUEUE_PREFIX}*:held:*")
    }
    holding = [key for key, items in held.items() if result.id.encode() in items]
    assert len(holding) == 1
    assert holding[0].endswith(":long_running")
    path = Path(result.get(timeout=30))
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 121  # header + one row per certificate
    report.refresh_from_db()
    assert (report.status, report.rows) == (Report.DONE, 120)
