"""Hypothesis strategies that build queue items field by field, as a buggy or hostile
producer would: a good Celery protocol 2 message with one field missing, null, of the
wrong type, empty, huge, with unexpected extra keys, or replaced by any JSON value;
nested structures (``properties``, ``delivery_info``, ``headers``, the body and its
embedded signatures) are mutated one level at a time.

These strategies hold the test's own view of the wire format (what a Celery 5 client
writes), independent of the platform's checks: ``REQUIRED`` lists what a reader must
have, so a mutation there must be rejected; any other mutation may be accepted, but
then the task must run exactly once.
"""

import base64
import json
import uuid
from dataclasses import dataclass, field

from hypothesis import strategies as st

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
A_SIGNATURE = {
    "task": "celery_tasks.cert.probe.whoami",
    "args": [],
    "kwargs": {},
    "options": {},
    "subtask_type": None,
    # Immutable: the probe takes no arguments, so it must not get its parent's result.
    "immutable": True,
}

# Paths into the envelope; ("body", …) paths point into the decoded body.
ENVELOPE_PATHS = [
    (),
    ("properties",),
    ("properties", "delivery_tag"),
    ("properties", "delivery_info"),
    ("properties", "delivery_info", "exchange"),
    ("properties", "delivery_info", "routing_key"),
    ("properties", "delivery_info", "redelivered"),
    ("properties", "body_encoding"),
    ("properties", "priority"),
    ("properties", "correlation_id"),
    ("properties", "reply_to"),
    ("properties", "delivery_mode"),
    ("content-type",),
    ("content-encoding",),
    ("body",),
    ("headers",),
    *(
        ("headers", name)
        for name in (
            "task",
            "id",
            "lang",
            "root_id",
            "parent_id",
            "group",
            "group_index",
            "retries",
            "eta",
            "expires",
            "timelimit",
            "argsrepr",
            "kwargsrepr",
            "origin",
            "shadow",
            "ignore_result",
            "stamps",
            "stamped_headers",
        )
    ),
    ("headers", "timelimit", 0),
    ("headers", "timelimit", 1),
]
BODY_PATHS = [
    (),
    (0,),
    (1,),
    (2,),
    (2, "callbacks"),
    (2, "errbacks"),
    (2, "chain"),
    (2, "chord"),
    (2, "callbacks", 0),
    (2, "callbacks", 0, "task"),
    (2, "callbacks", 0, "args"),
    (2, "callbacks", 0, "kwargs"),
    (2, "callbacks", 0, "options"),
    (2, "chord", "task"),
]
# What a reader cannot do without: a mutation that removes it, nulls it or gives it
# another type must be rejected.
REQUIRED = {
    ("properties",),
    ("properties", "delivery_tag"),
    ("properties", "delivery_info"),
    ("properties", "delivery_info", "exchange"),
    ("properties", "delivery_info", "routing_key"),
    ("content-type",),
    ("content-encoding",),
    ("headers",),
    ("headers", "task"),
    ("headers", "id"),
    ("body", ()),
    ("body", (0,)),
    ("body", (1,)),
}
MUTATIONS = ("missing", "null", "wrong-type", "empty", "huge", "extra-keys", "any-json")


def good_envelope(queue: str, task: str, args=(), kwargs=None, embed=None) -> dict:
    """The item a Celery 5 client LPUSHes for ``task`` (protocol 2, JSON, base64 body)."""
    task_id = str(uuid.uuid4())
    body = json.dumps([list(args), kwargs or {}, embed if embed is not None else EMBED])
    return {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(tuple(args)),
            "kwargsrepr": repr(kwargs or {}),
            "origin": "fuzz@tests",
            "ignore_result": False,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def _type_of(value):
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind
    return type(None)


def _empty_like(value):
    return {str: "", list: [], dict: {}, int: 0, float: 0.0, bool: False}.get(_type_of(value))


@st.composite
def _huge_like(draw, value):
    kind = _type_of(value)
    if kind is str:
        return draw(st.sampled_from(["x" * 300, "é" * 100_000, "\x00" * 1000]))
    if kind is list:
        return draw(st.sampled_from([[None] * 10_000, _nested(400)]))
    if kind is dict:
        return {f"k{i}": i for i in range(5000)}
    if kind in (int, float):
        return draw(st.sampled_from([2**64, -(2**63), 10**30, 1e308, -1.5]))
    return draw(st.sampled_from(["x" * 300, [None] * 1000]))


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def _mutate(draw, container, key, kind):
    """Mutate ``container[key]`` in place (or the container itself when key is None)."""
    if isinstance(container, dict):
        present = key in container
    else:
        present = isinstance(container, list) and isinstance(key, int) and key < len(container)
    if not present:
        return False
    value = container[key]
    if kind == "missing":
        if isinstance(container, dict):
            del container[key]
        else:
            del container[key:]
    elif kind == "null":
        container[key] = None
    elif kind == "wrong-type":
        container[key] = draw(json_values.filter(lambda new: _type_of(new) is not _type_of(value)))
    elif kind == "empty":
        container[key] = _empty_like(value)
    elif kind == "huge":
        container[key] = draw(_huge_like(value))
    elif kind == "extra-keys":
        if not isinstance(value, dict):
            return False
        extra = draw(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3))
        value.update({name: v for name, v in extra.items() if name not in value})
    else:
        container[key] = draw(json_values)
    return True


def _locate(root, path):
    """The container holding ``path``'s last step (None when the path does not exist)."""
    container = root
    for step in path[:-1]:
        try:
            container = container[step]
        except (KeyError, IndexError, TypeError):
            return None, path[-1]
    return container, path[-1]


@dataclass
class Item:
    """One item to push raw into a queue, and what the test knows about it."""

    queue: str
    envelope: object  # usually a dict; any JSON value when the whole item is replaced
    path: tuple
    mutation: str
    must_be_rejected: bool
    task_id: str | None = field(default=None)


@st.composite
def mutated_items(draw, queue: str, task: str):
    envelope = good_envelope(queue, task, embed={**EMBED, "callbacks": [dict(A_SIGNATURE)]})
    task_id = envelope["headers"]["id"]
    kind = draw(st.sampled_from(MUTATIONS))
    in_body = draw(st.booleans())
    if in_body:
        path = draw(st.sampled_from(BODY_PATHS))
        body = json.loads(base64.b64decode(envelope["body"]))
        if path == ():
            holder = {"body": body}
            applied = draw(_mutate(holder, "body", kind))
            body = holder.get("body", None)
        else:
            container, key = _locate(body, path)
            applied = draw(_mutate(container, key, kind))
        envelope["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        where = ("body", path)
    else:
        path = draw(st.sampled_from(ENVELOPE_PATHS))
        if path == ():
            holder = {"item": envelope}
            applied = draw(_mutate(holder, "item", kind))
            envelope = holder.get("item", "")
        else:
            container, key = _locate(envelope, path)
            applied = draw(_mutate(container, key, kind))
        where = path
    required = where in REQUIRED or path == ()
    must_be_rejected = applied and required and kind in ("missing", "null", "wrong-type")
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if not (isinstance(headers, dict) and headers.get("id") == task_id):
        task_id = None  # no way to match a run to this item: it must be rejected
    return Item(queue, envelope, where, kind if applied else "none", must_be_rejected, task_id)
