"""Pushing a partner's record to its HTTP service, retried with capped back-off."""

import json
import urllib.error
import urllib.request

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from records.models import Partner
from sites.green_door.celery_app import green_door_app


class PartnerUnavailable(Exception):
    """The partner service did not answer, or answered 5xx: worth retrying."""


@green_door_app.task(
    autoretry_for=(PartnerUnavailable,),
    retry_backoff=2,  # 2, 4, 8, 16 … seconds
    retry_backoff_max=3600,  # delays wait in Redis (platform_core.broker.delays): any length
    retry_jitter=True,  # spread retries of many tasks over the interval
    max_retries=5,
)
def sync_partner(partner_id: int) -> int:
    Partner.objects.filter(pk=partner_id).update(sync_attempts=F("sync_attempts") + 1)
    partner = Partner.objects.get(pk=partner_id)
    body = json.dumps({"id": partner.pk, "name": partner.name}).encode()
    request = urllib.request.Request(  # noqa: S310 - URL comes from settings
        f"{settings.GREEN_DOOR_PARTNER_URL}/partners/{partner.pk}",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise PartnerUnavailable(f"partner service answered {exc.code}") from exc
        raise  # 4xx: our request is wrong; retrying will not help
    except (urllib.error.URLError, TimeoutError) as exc:
        raise PartnerUnavailable(f"partner service unreachable: {exc}") from exc
    Partner.objects.filter(pk=partner_id).update(synced_at=timezone.now())
    return status
