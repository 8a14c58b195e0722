"""When a message was published, stamped into its headers by the platform's producers.

The queue metrics (platform_core.observe.queue_stats) read it from the oldest waiting message
to tell how long that message has waited. Plain Celery clients do not stamp: for their
messages the metrics count from when they first saw the message at the queue's head.
"""

from time import time

SENT_HEADER = "platform_sent_ms"  # milliseconds since the epoch, the producer's clock


def stamp(envelope: dict) -> None:
    """Stamp ``envelope`` (kombu's Redis envelope) with the time of this publish."""
    headers = envelope.get("headers")
    if isinstance(headers, dict):
        headers[SENT_HEADER] = int(time() * 1000)


def sent_ms(envelope: dict) -> int | None:
    """The stamp, if the message carries a readable one."""
    headers = envelope.get("headers")
    value = headers.get(SENT_HEADER) if isinstance(headers, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
