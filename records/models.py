"""The small data model the example tasks act on (one model per example)."""

from django.db import models


class Certificate(models.Model):
    """cert: issued by a task enqueued after the creating transaction commits."""

    holder = models.CharField(max_length=200)
    number = models.CharField(max_length=40, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.holder} ({self.number or 'pending'})"


class Partner(models.Model):
    """green_door: synchronised with a partner's HTTP service, retried with back-off."""

    name = models.CharField(max_length=200)
    sync_attempts = models.PositiveIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name


class Submission(models.Model):
    """pqs: scored by a task; stale drafts are purged by a periodic clean-up."""

    DRAFT, SUBMITTED = "draft", "submitted"
    status = models.CharField(
        max_length=20, choices=[(DRAFT, "draft"), (SUBMITTED, "submitted")], default=DRAFT
    )
    answers = models.JSONField(default=list)
    score = models.IntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"submission {self.pk} ({self.status})"


class ApiKey(models.Model):
    """api: usage is counted by a task, off the request path."""

    label = models.CharField(max_length=200)
    calls = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.label


class Report(models.Model):
    """long_running: a CSV report written by a task that reports its progress."""

    PENDING, RUNNING, DONE = "pending", "running", "done"
    status = models.CharField(max_length=20, default=PENDING)
    path = models.CharField(max_length=500, blank=True)
    rows = models.PositiveIntegerField(default=0)
    # Pause per row: lets a demo (or a test) make the report as long as it needs.
    row_delay_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"report {self.pk} ({self.status})"
