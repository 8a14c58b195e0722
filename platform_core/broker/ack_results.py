"""Results written with the acknowledgement of the message that ran them.

A finished task's result (Celery's meta, already encoded) waits here, keyed by task id,
for the moment Celery acknowledges the task's message; the acknowledgement then carries
it, so the fetch script that removes the message from the worker's held list also stores
the result and publishes it to whoever waits (lua/result_write.lua): one atomic step in
the worker's main process instead of a round trip in the pool child per task.

Filled by the worker's pool callback (platform_core.tasks.result_handback) just before
Celery's own callback acknowledges; what no acknowledgement took (a task acknowledged
early, a message rejected) is written by that callback at once.
"""

from dataclasses import dataclass

from platform_core.broker.scripts import STORE_RESULT


@dataclass(frozen=True)
class ResultWrite:
    """One result to store: as lua/store_result.lua takes it."""

    key: str  # celery-task-meta-<task id>, also the channel it is published on
    value: str | bytes  # the meta, JSON-encoded
    expires_ms: int  # 0: no expiry

    @property
    def args(self) -> tuple:
        return (self.value, self.expires_ms)

    def command(self) -> tuple:
        """The EVALSHA command, for a pipeline (its caller loads the script on NOSCRIPT)."""
        return STORE_RESULT.command(keys=(self.key,), args=self.args)

    def store(self, client) -> None:
        """Write it now, on its own (one round trip)."""
        STORE_RESULT(client, keys=(self.key,), args=self.args)


# task id -> its result, between the pool's callback and the message's acknowledgement.
# Only the worker's main thread touches it (Celery's pool callbacks run there).
WITH_ACK: dict[str, ResultWrite] = {}


def take(message) -> ResultWrite | None:
    """The result waiting for ``message``'s acknowledgement, if any (protocol 2: the task
    id is in the headers; a message without one has none waiting)."""
    if not WITH_ACK:
        return None
    headers = getattr(message, "headers", None)
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return WITH_ACK.pop(task_id, None) if task_id else None
