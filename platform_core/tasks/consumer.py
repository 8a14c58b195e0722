"""The worker's consumer: bad messages get one clear log line, are counted, and dropped.

Celery's own handlers log several lines with a body dump and a traceback for each
bad message; an operator wants to know what was wrong, where, and that nothing else
was affected. Before Celery's handler reads a task message, its headers and body are
checked (platform_core.broker.message_checks): Celery reads them with plain lookups, and an
exception out of its handler would reach the connection's error handling.

fence: celery-consumer-bad-messages, celery-consumer-events, celery-consumer-reconnect
(platform_core/config/fences.py).
Celery's signals fire as its own handlers send them (celery.worker.consumer.Consumer,
5.7): ``task_rejected(message, exc)`` once the message is rejected — for an unknown
message (exc None) and an invalid task (ContentDisallowed, InvalidTaskError), and here
also for every message the platform's checks drop; ``task_unknown(message, exc, name,
id)`` for an unknown task name, after its result is marked failed (no
``task_rejected`` for it, as upstream). tests/unit/test_consumer_signals.py holds the
handlers to that.
"""

import functools
import logging

from celery import signals
from celery.exceptions import NotRegistered
from celery.utils.collections import AttributeDict
from celery.worker.consumer import Consumer
from django.conf import settings
from kombu.exceptions import ContentDisallowed

from platform_core.broker.message_checks import check_task_body, check_task_headers
from platform_core.broker.rejections import report_rejection
from platform_core.config import timeouts
from platform_core.config.drills import DRILLS_OFF, is_drill
from platform_core.errors import BROKER_ERRORS, BadMessage, Rejection
from platform_core.tasks import cancellation

logger = logging.getLogger("platform_core.rejected")


def _context(message) -> dict:
    headers = message.headers if isinstance(message.headers, dict) else {}
    return {
        "task": str(headers.get("task", "?"))[:200],
        "id": str(headers.get("id", "?"))[:100],
        "content_type": repr(message.content_type)[:100],
        "bytes": len(message.body or b""),
    }


class PlatformConsumer(Consumer):
    _event_flush_pending = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cancellation.listen(self)  # stop the tasks cancelled in this queue (Redis-kept)

    # fence: celery-consumer-reconnect
    def ensure_connected(self, conn):
        # kombu's reconnect waits 2 s, then 2 s more each time (up to 30): a worker
        # would take up to ~6 s to notice a broker back after a failover. Here it asks
        # again every RECONNECT_STEP_SECONDS, and never waits longer than
        # RECONNECT_MAX_SECONDS (Celery passes no intervals, kombu's defaults apply).
        ensure = conn.ensure_connection
        conn.ensure_connection = functools.partial(
            ensure,
            interval_start=timeouts.RECONNECT_STEP_SECONDS,
            interval_step=timeouts.RECONNECT_STEP_SECONDS,
            interval_max=timeouts.RECONNECT_MAX_SECONDS,
        )
        try:
            return super().ensure_connected(conn)
        finally:
            del conn.ensure_connection  # the class's method again

    def on_send_event_buffered(self):
        # Celery buffers task events and publishes the buffer as one "task.multi"
        # message on the next loop turn, which on a busy worker means one PUBLISH per
        # event. Waiting PLATFORM_EVENT_FLUSH_MS gathers them into one.
        if self.hub and not self._event_flush_pending:
            self._event_flush_pending = True
            self.hub.call_later(
                settings.PLATFORM_EVENT_FLUSH_MS / 1000, self._flush_gathered_events
            )

    def _flush_gathered_events(self):
        self._event_flush_pending = False
        self._flush_events()

    def shutdown(self):
        # Events still gathered (e.g. of the tasks a warm shutdown waited for) go out
        # before the dispatcher closes; stock Celery drops them.
        if self.event_dispatcher:
            try:
                self.event_dispatcher.flush(errors=False)
            except Exception as exc:  # best effort, as events are
                logging.getLogger(__name__).warning("Task events not sent at shutdown: %s", exc)
        super().shutdown()

    @property
    def _queue(self) -> str:
        return self.app.conf.task_default_queue

    def _drop(self, message, reason: Rejection, detail: str) -> None:
        report_rejection(self._queue, reason, detail, **_context(message))
        if not message.acknowledged:
            message.reject_log_error(logger, self.connection_errors)

    def _discard(self, message, reason: Rejection, detail: str, exc=None) -> None:
        self._drop(message, reason, detail)
        # As Celery's on_unknown_message and on_invalid_task: after the reject.
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)
        limit = settings.PLATFORM_MAX_MESSAGE_BYTES

        def on_task_received(message):
            size = len(message.body or b"")
            if size > limit:
                # Refuse before decoding: a huge body would stall the consumer.
                detail = f"{size} bytes > {limit} (PLATFORM_MAX_MESSAGE_BYTES)"
                return self._discard(message, Rejection.TOO_LARGE, detail)
            headers = message.headers
            if not isinstance(headers, dict) or "task" not in headers:
                detail = "no task name in headers (a Celery protocol 2 message is expected)"
                return self._discard(message, Rejection.NOT_A_TASK, detail)
            try:
                check_task_headers(headers)
                # Decoded once here; Celery's handler reuses message.payload.
                check_task_body(message.payload)
            except BadMessage as exc:
                return self._discard(message, exc.reason, str(exc), exc)
            except ContentDisallowed as exc:
                return self.on_invalid_task(None, message, exc)
            except Exception as exc:  # decoding touches nothing but the message
                return self.on_decode_error(message, exc)
            try:
                return handle(message)
            except BROKER_ERRORS:
                raise
            except Exception as exc:
                # What the checks did not foresee: one line, never a reconnect.
                detail = f"{type(exc).__name__}: {exc}"
                return self._discard(message, Rejection.UNEXPECTED, detail, exc)

        return on_task_received

    def on_decode_error(self, message, exc):
        self._discard(message, Rejection.UNDECODABLE, f"{type(exc).__name__}: {exc}", exc)

    def on_unknown_message(self, body, message):
        self._discard(message, Rejection.NOT_A_TASK, "no task name in headers or body")

    def on_invalid_task(self, body, message, exc):
        self._discard(message, Rejection.INVALID, f"{type(exc).__name__}: {exc}", exc)

    def on_unknown_task(self, body, message, exc):
        headers = message.headers or {}
        name, task_id = headers.get("task", "?"), headers.get("id")
        if isinstance(name, str) and is_drill(name) and not settings.PLATFORM_DRILLS:
            # Not loaded on purpose (platform_core.config.drills): say so, and how to enable.
            self._drop(message, Rejection.DRILLS_OFF, f"{name} is a fault drill and {DRILLS_OFF}")
        else:
            self._drop(
                message,
                Rejection.UNKNOWN_TASK,
                f"no task {name!r} on the {self._queue} worker (check the name and the queue)",
            )
        if task_id:
            # The caller waiting on the result learns why, as with stock Celery.
            request = AttributeDict(
                name=name,
                chord=None,
                root_id=headers.get("root_id"),
                errbacks=None,
                correlation_id=message.properties.get("correlation_id"),
                reply_to=message.properties.get("reply_to"),
            )
            self.app.backend.mark_as_failure(task_id, NotRegistered(name), request=request)
            if self.event_dispatcher:
                self.event_dispatcher.send(
                    "task-failed", uuid=task_id, exception=f"NotRegistered({name!r})"
                )
        # As Celery's on_unknown_task: last, and task_unknown only.
        signals.task_unknown.send(sender=self, message=message, exc=exc, name=name, id=task_id)
