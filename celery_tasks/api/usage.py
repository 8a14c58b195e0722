"""Counting API key usage off the request path."""

from django.db.models import F
from django.utils import timezone

from records.models import ApiKey
from sites.api.celery_app import api_app


@api_app.task
def record_api_call(api_key_id: int) -> None:
    # One UPDATE with F(): concurrent workers never lose an increment.
    ApiKey.objects.filter(pk=api_key_id).update(calls=F("calls") + 1, last_used_at=timezone.now())
