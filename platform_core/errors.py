"""Every error the platform raises on purpose, and every reason it refuses a message.

One place, so a caller can catch ``PlatformError`` for all of them, and so the reason a
message was refused is one typed value: the word in the log line ("Rejected message
(<reason>): …") and the ``reason`` label of ``platform_rejected_messages`` both come from
:class:`Rejection`. Each error also keeps the built-in class callers caught before
(``ValueError``, ``TypeError``, …), so existing ``except`` clauses still hold.

The lowest layer of ``platform_core``: it imports nothing of the platform.
"""

from enum import StrEnum

import redis

# Errors that mean the broker, not the item, failed: they go on to kombu's and Celery's
# connection handling. Anything else raised while one item is handled came from that
# item's content (kombu counts even KeyError as a connection error).
BROKER_ERRORS = (redis.RedisError, OSError)


class PlatformError(Exception):
    """Base of every error the platform raises on purpose; its text is for a person."""


class Rejection(StrEnum):
    """Why a message was refused and discarded (a Prometheus label: values are stable)."""

    NOT_AN_ENVELOPE = "not-an-envelope"  # not JSON, or JSON but not an object
    BAD_ENVELOPE = "bad-envelope"  # kombu's envelope fields missing or of the wrong type
    BAD_HEADER = "bad-header"  # Celery's task headers (protocol 2)
    BAD_BODY = "bad-body"  # Celery's [args, kwargs, embed]
    TOO_LARGE = "too-large"  # body over PLATFORM_MAX_MESSAGE_BYTES
    NOT_A_TASK = "not-a-task"  # no task name anywhere
    UNDECODABLE = "undecodable"  # the body does not decode with its content type
    INVALID = "invalid"  # Celery refused it (e.g. a content type not accepted)
    UNKNOWN_TASK = "unknown-task"  # no such task on this worker
    DRILLS_OFF = "drills-off"  # a fault drill sent to a host whose drills are off
    WRONG_ARGUMENTS = "wrong-arguments"  # arguments do not fit the task's signature
    TOO_MANY_ATTEMPTS = "too-many-attempts"  # delivered PLATFORM_MAX_ATTEMPTS times, never done
    UNEXPECTED = "unexpected"  # what no check foresaw; still one line, never a reconnect


class BadMessage(PlatformError, ValueError):
    """An item whose content cannot be handled; ``field`` names where it is wrong."""

    def __init__(self, reason: Rejection, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.reason, self.field, self.problem = Rejection(reason), field, problem


class WrongArguments(PlatformError, TypeError):
    """A message whose arguments do not fit the task's signature."""


class TooManyAttempts(PlatformError, RuntimeError):
    """The message was delivered again and again and never completed: given up."""


class DelayTooLong(PlatformError, ValueError):
    """A countdown/ETA beyond the platform's sanity limit. Nothing was sent."""


class BadTaskOption(PlatformError, ValueError):
    """A task's platform option (e.g. unique_for) is wrong: its app does not start."""


class BadRate(PlatformError, ValueError):
    """A rate limit that does not parse (its rate, or what it limits): nothing changed."""


class UnknownTask(PlatformError, LookupError):
    """A task id to cancel is nowhere in the queues: nothing was cancelled."""


class BrokerUnavailable(PlatformError, ConnectionError):
    """The task could not be enqueued: the broker did not answer in time. Nothing was sent."""


class NotReplicated(PlatformError, RuntimeError):
    """An enqueue that fewer replicas than PLATFORM_BROKER_MIN_REPLICAS confirmed in time
    (WAIT), or that the primary refused for want of replicas (NOREPLICAS). It was not
    kept: the caller may send it again (on the new primary, after a failover)."""

    def __init__(self, queue: str, wanted: int, confirmed: int = 0, refused: bool = False):
        self.queue, self.wanted, self.confirmed = queue, wanted, confirmed
        if refused:
            what = f"the primary refused it: fewer than {wanted} replica(s) are connected"
        else:
            what = f"{confirmed} of {wanted} replica(s) confirmed it in time"
        super().__init__(
            f"Enqueue to {queue} NOT done: {what} (PLATFORM_BROKER_MIN_REPLICAS={wanted}, "
            "PLATFORM_BROKER_REPLICA_TIMEOUT_MS). Nothing was kept; send it again once the "
            "broker's replicas are back (manage.py queues shows the broker's replicas)."
        )


class SendNotAllowed(PlatformError, RuntimeError):
    """Redis refused an enqueue (NOPERM): this process' Redis user may not push onto that
    queue (broker.acl: each site sends only to the queues its allow-list names)."""

    def __init__(self, queue: str, user: str | None):
        self.queue, self.user = queue, user
        super().__init__(
            f"Enqueue to {queue} NOT done: Redis user {user or 'default'!r} may not send to "
            f"queue {queue!r}. Allow it in the inventory's platform_site_sends and deploy "
            "(docs/operations.md, 'Redis users'); nothing was enqueued."
        )


class BadSiteName(PlatformError, ValueError):
    """A name that cannot become a site (a Python package and a queue)."""


class LeaseLost(PlatformError):
    """This worker's lease expired before it fetched again: what it held was handed out.

    Raised from the fetch script's error reply, which starts with :attr:`REPLY_CODE`
    (platform_core/broker/lua/fetch.lua).
    """

    REPLY_CODE = "LEASELOST"

    def __init__(self, worker_id: str):
        super().__init__(f"the lease of worker {worker_id} expired")
        self.worker_id = worker_id

    @classmethod
    def from_reply(cls, reply: Exception) -> "LeaseLost | None":
        """The lease loss a script's error reply reports, if it reports one."""
        code, _, worker_id = str(reply).partition(" ")
        return cls(worker_id) if code == cls.REPLY_CODE else None
