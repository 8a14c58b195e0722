"""Counting rejected messages in Redis, so operators (and tests) can see them."""

import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

REJECTED_KEY = "platform:rejected"


def count_rejection(queue: str, reason: str) -> None:
    """HINCRBY ``platform:rejected`` ``<queue>:<reason>``; never raises into the consumer."""
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
        client.hincrby(REJECTED_KEY, f"{queue}:{reason}", 1)
        client.close()
    except redis.RedisError as exc:
        logger.warning("could not count a rejected message: %s", exc)
