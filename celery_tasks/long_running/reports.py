"""A long report: writes a CSV file and reports progress to Flower and the result backend."""

import csv
import time

from django.conf import settings
from django.utils import timezone

from records.models import Certificate, Report
from sites.long_running.celery_app import long_running_app

PROGRESS_EVERY_ROWS = 50


@long_running_app.task(bind=True)
def build_certificate_report(self, report_id: int) -> str:
    report = Report.objects.get(pk=report_id)
    Report.objects.filter(pk=report_id).update(status=Report.RUNNING)
    settings.REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.REPORTS_DIR / f"certificates-{report_id}.csv"
    partial = path.with_suffix(".partial")
    total = Certificate.objects.count()
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "holder", "number", "issued_at"])
        rows = Certificate.objects.order_by("pk").values_list("pk", "holder", "number", "issued_at")
        for done, row in enumerate(rows.iterator(), start=1):
            writer.writerow(row)
            if report.row_delay_ms:
                time.sleep(report.row_delay_ms / 1000)
            if done % PROGRESS_EVERY_ROWS == 0 or done == total:
                _report_progress(self, done, total)
    partial.replace(path)  # a reader never sees half a report
    Report.objects.filter(pk=report_id).update(
        status=Report.DONE, path=str(path), rows=total, finished_at=timezone.now()
    )
    return str(path)


def _report_progress(task, done: int, total: int) -> None:
    if task.is_eager:
        return  # synchronous mode: no result backend, no Flower
    meta = {"done": done, "total": total}
    task.update_state(state="PROGRESS", meta=meta)  # visible through AsyncResult.info
    task.send_event("task-progress", **meta)  # visible in Flower as state PROGRESS
