"""Unique tasks, the broker's side: a message carrying UNIQUE_HEADER is pushed only if no
other task holds its uniqueness key (lua/enqueue_unique.lua), in the room of the queue it
is sent to; the sender learns which task holds it (holder()). The task's side (options,
the key's name, its release) is platform_core.tasks.unique."""

import threading

from platform_core.broker import keys
from platform_core.broker.scripts import RELEASE_UNIQUE

# Header: "<uniqueness name>\n<window ms>" (tasks.unique.header).
UNIQUE_HEADER = "platform_unique"

_sent = threading.local()  # what this thread's last unique send found


def unique_of(message: dict) -> tuple[str, int] | None:
    """The (uniqueness name, window ms) a message's UNIQUE_HEADER carries, if any."""
    headers = message.get("headers")
    return parse(headers.get(UNIQUE_HEADER) if isinstance(headers, dict) else None)


def parse(value) -> tuple[str, int] | None:
    """UNIQUE_HEADER's value as (uniqueness name, window ms); None if it is not one."""
    if not isinstance(value, str):
        return None
    name, _, window = value.rpartition("\n")
    return (name, int(window)) if name and window.isdigit() else None


def record_holder(task_id: str) -> None:
    _sent.holder = task_id


def take_holder() -> str | None:
    """The id of the task holding the key of this thread's last unique send (its own id
    if it was pushed), once."""
    holder, _sent.holder = getattr(_sent, "holder", None), None
    return holder


def release(client, queue: str, name: str, task_id: str) -> bool:
    """Give ``name``'s key in ``queue``'s room up if ``task_id`` still holds it."""
    return bool(RELEASE_UNIQUE(client, keys=(keys.room(queue).unique(name),), args=(task_id,)))
