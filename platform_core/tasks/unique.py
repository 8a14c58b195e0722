"""Unique tasks: ``@app.task(unique_for=SECONDS)`` — a second enqueue of the same task with
the same arguments inside the window is not queued, and returns the first one's id.

    @pqs_app.task(unique_for=600)                        # name + arguments
    def rebuild_index(site_id): ...

    @pqs_app.task(unique_for=600, unique_key=lambda site_id, **_: str(site_id))
    def sync_site(site_id, force=False): ...             # name + site_id only

    @pqs_app.task(unique_for=3600, unique_until="window")
    def send_digest(user_id): ...                        # once an hour, even once done

``unique_until``: "finish" (default) — the key is released when the task finishes
(success, or failure for good: not between retries) or when the window ends, whichever
comes first; "window" — kept until the window ends, however soon the task finished.

The key (in the room of the queue the task is sent to: keys.Room.unique) is taken in the
same script as the push (broker.unique, lua/enqueue_unique.lua), so producers racing on
any host leave one message. What is not unique: a task sent by name (``send_task``) from
a process that does not import it (another site's producer), and tasks run synchronously
(``USE_CELERY`` off: every call runs).
"""

import hashlib
import json
import math
import numbers

from celery import states
from django.conf import settings

from platform_core.broker import clients, unique
from platform_core.errors import BadTaskOption

UNTIL = ("finish", "window")


def check_options(task) -> None:
    """Refuse a task whose unique options are wrong, when its module loads."""
    window = task.unique_for
    if window is None:
        return
    limit = settings.PLATFORM_MAX_DELAY_SECONDS
    if isinstance(window, bool) or not isinstance(window, numbers.Real) or window <= 0:
        raise BadTaskOption(
            f"{task.name}: unique_for={window!r} is not a number of seconds > 0 "
            "(e.g. unique_for=600)"
        )
    if window > limit:
        raise BadTaskOption(
            f"{task.name}: unique_for={window} s is longer than the longest delay a task "
            f"may have (PLATFORM_MAX_DELAY_SECONDS={limit}); shorten it, or raise the limit"
        )
    if task.unique_until not in UNTIL:
        raise BadTaskOption(
            f"{task.name}: unique_until={task.unique_until!r}; use one of {', '.join(UNTIL)}"
        )
    if task.unique_key is not None and not callable(task.unique_key):
        raise BadTaskOption(
            f"{task.name}: unique_key must be a function of the task's arguments returning "
            f"the part of them that makes two calls the same, not {task.unique_key!r}"
        )


def name_for(task, args, kwargs) -> str:
    """The uniqueness name of a call: the task's name and a digest of what makes it the
    same call (its arguments, or what ``unique_key`` returns of them)."""
    args, kwargs = tuple(args or ()), dict(kwargs or {})
    if task.unique_key is not None:
        same = str(task.unique_key(*args, **kwargs))
    else:
        same = json.dumps([args, kwargs], sort_keys=True, default=repr, separators=(",", ":"))
    return f"{task.name}:{hashlib.sha1(same.encode(), usedforsecurity=False).hexdigest()}"


def header(task, args, kwargs) -> str:
    """UNIQUE_HEADER's value for a call (broker.unique.unique_of reads it)."""
    return f"{name_for(task, args, kwargs)}\n{math.ceil(task.unique_for * 1000)}"


def release_after(task, state: str, task_id: str) -> None:
    """In the worker, once a task with unique_until="finish" has finished for good."""
    if task.unique_for is None or task.unique_until != "finish":
        return
    if state not in states.READY_STATES:
        return  # a retry keeps the key: the same task runs again
    # Celery gives a message's own headers to the task as request attributes.
    sent = unique.parse(getattr(task.request, unique.UNIQUE_HEADER, None))
    if sent is not None:
        unique.release(clients.shared(), task.app.conf.task_default_queue, sent[0], task_id)
