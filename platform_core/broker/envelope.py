"""kombu's Redis envelope, read under a guard: an item anyone LPUSHed is checked here
before any of kombu's or Celery's code touches it (the checks: message_checks)."""

from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from platform_core.errors import BadMessage, Rejection


def parse(item: bytes) -> dict:
    """The envelope an item holds, or BadMessage saying why it holds none."""
    try:
        envelope = loads(bytes_to_str(item))
    except Exception as exc:  # parsing touches nothing but the item (RecursionError too)
        raise BadMessage(Rejection.NOT_AN_ENVELOPE, "envelope", f"is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        kind = {type(None): "null", list: "array", str: "string", bool: "boolean"}.get(
            type(envelope), "number"
        )
        raise BadMessage(Rejection.NOT_AN_ENVELOPE, "envelope", f"is a JSON {kind}, not an object")
    return envelope


def context(envelope, item: bytes) -> dict:
    """What a rejection line can say about the item besides its queue."""
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    found = {}
    if isinstance(headers, dict):
        for name in ("task", "id"):
            if isinstance(headers.get(name), str):
                found[name] = headers[name][:200]
    return {**found, "bytes": len(item)}


# fence: kombu-redis-held-format (virtual.Message reads the envelope)
class Message(virtual.Message):
    def __init__(self, payload, channel=None, **kwargs):
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except ValueError as exc:  # binascii.Error: the body is not the base64 it claims
            encoding = payload["properties"].get("body_encoding")
            raise BadMessage(
                Rejection.BAD_ENVELOPE, "body", f"is not valid {encoding}: {exc}"
            ) from None
