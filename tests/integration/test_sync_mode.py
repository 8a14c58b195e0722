"""USE_CELERY off: tasks run in the calling process, with no Redis anywhere."""

import os
import subprocess
import textwrap

from harness.processes import free_port, manage

SCRIPT = textwrap.dedent(
    """
    from django.db import transaction
    from celery_tasks.cert.certificates import issue_certificate
    from celery_tasks.pqs.submissions import score_submission
    from celery_tasks.long_running.reports import build_certificate_report
    from records.models import Certificate, Report, Submission
    from records.services import request_certificate
    from sites.cert.celery_app import cert_app

    with transaction.atomic():
        cert = request_certificate("Grace Hopper")
        assert Certificate.objects.get(pk=cert.pk).issued_at is None, "ran before commit"
    assert Certificate.objects.get(pk=cert.pk).number == f"CERT-{cert.pk:08d}"

    submission = Submission.objects.create(answers=["x", "y"])
    assert score_submission.delay(submission.pk).get() == 2
    # By name, across sites, still synchronous:
    assert cert_app.send_task(
        "celery_tasks.pqs.submissions.score_submission", args=[submission.pk]
    ).get() == 2
    report = Report.objects.create()
    path = build_certificate_report.delay(report.pk).get()
    assert open(path).read().count("Grace Hopper") == 1
    try:
        issue_certificate.delay(10**9)
    except Certificate.DoesNotExist:
        print("exception propagated")
    print("sync mode ok")
    """
)


def test_tasks_run_synchronously_without_any_broker(tmp_path):
    env = {
        **os.environ,
        "USE_CELERY": "0",
        # Nothing listens here: any attempt to reach Redis would fail loudly.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sync.sqlite3'}",
        "REPORTS_DIR": str(tmp_path / "reports"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    migrate = subprocess.run(manage("migrate", "-v0"), env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    result = subprocess.run(
        manage("shell", "-c", SCRIPT), env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "exception propagated" in result.stdout
    assert "sync mode ok" in result.stdout
