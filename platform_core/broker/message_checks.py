"""What a message must look like before any of kombu's or Celery's code touches it.

Anyone who can LPUSH writes into a queue. kombu and Celery read the items they pop
with plain ``dict[...]`` lookups and unpacking; a field missing or of the wrong type
raises deep inside the worker's event loop, where kombu's Redis transport counts
``KeyError`` as a *connection* error (kombu 5.7, ``get_redis_error_classes``): the
worker drops its connection and reconnects, and a late-acked task running at that
moment cannot be acknowledged. So every field those readers use is checked here, by
the layer that knows the item, and a bad one raises :class:`BadMessage` naming it.

Unknown extra keys are accepted everywhere: newer Celery clients add headers.

Two layers, two checks: the transport checks the kombu envelope
(:func:`check_envelope`); the worker's consumer checks the Celery task message
(:func:`check_task_headers`, :func:`check_task_body`, Celery protocol 2).

fence: kombu-redis-held-format (platform_core/config/fences.py): the envelope fields are
those kombu's virtual ``Message.__init__`` reads.
"""

import codecs
import functools
import math
from datetime import datetime

from platform_core.errors import BadMessage, Rejection

# Longest delivery tag / task id accepted (Celery writes 36-character UUIDs); both
# become Redis keys or hash fields.
LONGEST_ID = 255
# Largest retry count and time limit (seconds) a message may carry.
LARGEST_COUNT = 2**31 - 1
BODY_ENCODINGS = (None, "utf-8", "base64")  # kombu's Redis channel decodes these


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _require(reason, mapping, field, path, check, required):
    if field not in mapping:
        if required:
            raise BadMessage(reason, path, "is missing")
        return
    problem = check(mapping[field])
    if problem:
        raise BadMessage(reason, path, problem)


# Value checks: each returns what is wrong, or None.
def _str(value, empty_ok=True, longest=None):
    if not isinstance(value, str):
        return f"must be a string, not {_kind(value)}"
    if not empty_ok and not value:
        return "must not be empty"
    if longest is not None and len(value) > longest:
        return f"is {len(value)} characters long (at most {longest})"
    return None


def _optional(check):
    return lambda value: None if value is None else check(value)


def _dict(value):
    return None if isinstance(value, dict) else f"must be an object, not {_kind(value)}"


def _int(value, smallest=0):
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {_kind(value)}"
    if not smallest <= value <= LARGEST_COUNT:
        return f"is {value} (from {smallest} to {LARGEST_COUNT})"
    return None


def _any_int(value):
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {_kind(value)}"
    return None


def _bool(value):
    return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)}"


def _seconds(value):
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, not {_kind(value)}"
    if not math.isfinite(value) or not 0 <= value <= LARGEST_COUNT:
        return f"is {value} (from 0 to {LARGEST_COUNT} seconds)"
    return None


def _time_limits(value):
    if not isinstance(value, list) or len(value) != 2:
        return f"must be [soft, hard] seconds, not {_kind(value)}"
    problems = [_optional(_seconds)(limit) for limit in value]
    return next((problem for problem in problems if problem), None)


def _iso_datetime(value):
    problem = _str(value, empty_ok=False)
    if problem:
        return problem
    try:
        parsed = datetime.fromisoformat(value)
        # Celery compares and converts it: it must have a POSIX timestamp.
        parsed.timestamp()
    except (ValueError, OverflowError, OSError) as exc:
        return f"{value[:40]!r} is not an ISO 8601 date-time ({exc})"
    return None


def _content_encoding(value):
    problem = _str(value, empty_ok=False)
    if problem:
        return problem
    if value == "binary":
        return None
    try:
        codecs.lookup(value)
    except (LookupError, ValueError):  # ValueError: "embedded null character" (fuzz)
        return f"{value[:40]!r} is not a known text encoding"
    return None


def _body_encoding(value):
    if value not in BODY_ENCODINGS:
        return f"{str(value)[:40]!r} is not one of {', '.join(map(str, BODY_ENCODINGS))}"
    return None


def _name(value):
    return _str(value, empty_ok=False)


def _id(value):
    return _str(value, empty_ok=False, longest=LONGEST_ID)


def _list(value):
    return None if isinstance(value, list) else f"must be a list, not {_kind(value)}"


_str_or_null = _optional(_str)


def _list_of_str(value):
    # Celery looks each element up in a dict (Request.revoked): it must be hashable.
    problem = _list(value)
    if problem:
        return problem
    for item in value:
        if not isinstance(item, str):
            return f"must be a list of strings, not contain {_kind(item)}"
    return None


ENVELOPE_FIELDS = {
    # field: (check, required)
    "properties": (_dict, True),
    "body": (_str_or_null, False),
    "content-type": (_name, True),
    "content-encoding": (_content_encoding, True),
    "headers": (_optional(_dict), False),
}
PROPERTY_FIELDS = {
    "delivery_tag": (_id, True),
    "delivery_info": (_dict, True),
    "body_encoding": (_body_encoding, False),
    "priority": (_optional(_any_int), False),
    "delivery_mode": (_optional(_any_int), False),
    "correlation_id": (_str_or_null, False),
    "reply_to": (_str_or_null, False),
}
DELIVERY_INFO_FIELDS = {
    "exchange": (_str, True),
    "routing_key": (_str, True),
    "redelivered": (_optional(_bool), False),
}
TASK_HEADER_FIELDS = {
    "task": (_name, True),
    "id": (_id, True),
    "root_id": (_str_or_null, False),
    "parent_id": (_str_or_null, False),
    "group": (_str_or_null, False),
    "group_index": (_optional(_int), False),
    "shadow": (_str_or_null, False),
    "lang": (_str_or_null, False),
    "origin": (_str_or_null, False),
    "argsrepr": (_str_or_null, False),
    "kwargsrepr": (_str_or_null, False),
    "eta": (_optional(_iso_datetime), False),
    "expires": (_optional(_iso_datetime), False),
    "retries": (_optional(_int), False),
    "timelimit": (_optional(_time_limits), False),
    "ignore_result": (_optional(_bool), False),
    "replaced_task_nesting": (_optional(_int), False),
    "stamped_headers": (_optional(_list_of_str), False),
    "stamps": (_optional(_dict), False),
}
SIGNATURE_FIELDS = {
    "task": (_name, True),
    "args": (_optional(_list), False),
    "kwargs": (_optional(_dict), False),
    "options": (_optional(_dict), False),
    "immutable": (_optional(_bool), False),
    "subtask_type": (_str_or_null, False),
}


def _only_bad_message(reason):
    """A check that fails in a way nobody foresaw still names what it was checking."""

    def decorate(check):
        @functools.wraps(check)
        def guarded(value):
            try:
                return check(value)
            except BadMessage:
                raise
            except Exception as exc:
                raise BadMessage(reason, "message", f"could not be checked ({exc!r:.200})") from exc

        return guarded

    return decorate


def _check_fields(reason, mapping, fields, prefix):
    for field, (check, required) in fields.items():
        _require(reason, mapping, field, f"{prefix}{field}", check, required)


@_only_bad_message(Rejection.BAD_ENVELOPE)
def check_envelope(envelope: dict) -> None:
    """The kombu envelope: what kombu's virtual ``Message`` and Redis QoS read."""
    _check_fields(Rejection.BAD_ENVELOPE, envelope, ENVELOPE_FIELDS, "")
    properties = envelope["properties"]
    _check_fields(Rejection.BAD_ENVELOPE, properties, PROPERTY_FIELDS, "properties.")
    _check_fields(
        Rejection.BAD_ENVELOPE, properties["delivery_info"], DELIVERY_INFO_FIELDS, "delivery_info."
    )


@_only_bad_message(Rejection.BAD_HEADER)
def check_task_headers(headers: dict) -> None:
    """Celery protocol 2 headers: what ``celery.worker.request.Request`` reads."""
    _check_fields(Rejection.BAD_HEADER, headers, TASK_HEADER_FIELDS, "headers.")


def _check_signatures(value, path, many):
    if value is None:
        return
    signatures = value if many else [value]
    if many and not isinstance(value, list):
        raise BadMessage(
            Rejection.BAD_BODY, path, f"must be a list of signatures, not {_kind(value)}"
        )
    for index, signature in enumerate(signatures):
        where = f"{path}[{index}]" if many else path
        if not isinstance(signature, dict):
            raise BadMessage(
                Rejection.BAD_BODY, where, f"must be a signature object, not {_kind(signature)}"
            )
        _check_fields(Rejection.BAD_BODY, signature, SIGNATURE_FIELDS, f"{where}.")


@_only_bad_message(Rejection.BAD_BODY)
def check_task_body(payload) -> None:
    """A decoded protocol 2 body: ``[args, kwargs, {callbacks, errbacks, chain, chord}]``."""
    if not isinstance(payload, list | tuple) or len(payload) != 3:
        raise BadMessage(Rejection.BAD_BODY, "body", "must be [args, kwargs, embed]")
    args, kwargs, embed = payload
    if not isinstance(args, list | tuple):
        raise BadMessage(Rejection.BAD_BODY, "body.args", f"must be a list, not {_kind(args)}")
    if not isinstance(kwargs, dict):
        raise BadMessage(
            Rejection.BAD_BODY, "body.kwargs", f"must be an object, not {_kind(kwargs)}"
        )
    if embed is None:
        return
    if not isinstance(embed, dict):
        raise BadMessage(Rejection.BAD_BODY, "body.embed", f"must be an object, not {_kind(embed)}")
    for field in ("callbacks", "errbacks", "chain"):
        _check_signatures(embed.get(field), f"body.embed.{field}", many=True)
    _check_signatures(embed.get("chord"), "body.embed.chord", many=False)
