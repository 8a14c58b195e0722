"""The worker's consumer: bad messages get one clear log line, are counted, and dropped.

Celery's own handlers log several lines with a body dump and a traceback for each
bad message; an operator wants to know what was wrong, where, and that nothing else
was affected.
"""

import logging

from celery.exceptions import NotRegistered
from celery.utils.collections import AttributeDict
from celery.worker.consumer import Consumer
from django.conf import settings

from platform_core.rejections import count_rejection

logger = logging.getLogger("platform_core.rejected")


def _describe(message) -> str:
    headers = message.headers or {}
    return (
        f"queue={message.delivery_info.get('routing_key') or '?'} "
        f"task={headers.get('task', '?')} id={headers.get('id', '?')} "
        f"content_type={message.content_type!r} bytes={len(message.body or b'')}"
    )


class PlatformConsumer(Consumer):
    _event_flush_pending = False

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

    def _reject(self, message, reason: str, detail: str) -> None:
        logger.error(
            "Rejected message (%s): %s [%s]; discarded", reason, detail, _describe(message)
        )
        count_rejection(self._queue, reason)

    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)
        limit = settings.PLATFORM_MAX_MESSAGE_BYTES

        def on_task_received(message):
            size = len(message.body or b"")
            if size > limit:
                # Refuse before decoding: a huge body would stall the consumer.
                self._reject(
                    message, "too-large", f"{size} bytes > {limit} (PLATFORM_MAX_MESSAGE_BYTES)"
                )
                message.reject_log_error(logger, self.connection_errors)
                return None
            return handle(message)

        return on_task_received

    def on_decode_error(self, message, exc):
        self._reject(message, "undecodable", f"{type(exc).__name__}: {exc}")
        message.ack()

    def on_unknown_message(self, body, message):
        self._reject(message, "not-a-task", "no task name in headers or body")
        message.reject_log_error(logger, self.connection_errors)

    def on_invalid_task(self, body, message, exc):
        self._reject(message, "invalid", f"{type(exc).__name__}: {exc}")
        message.reject_log_error(logger, self.connection_errors)

    def on_unknown_task(self, body, message, exc):
        headers = message.headers or {}
        name, task_id = headers.get("task", "?"), headers.get("id")
        self._reject(
            message,
            "unknown-task",
            f"no task {name!r} on the {self._queue} worker (check the name and the queue)",
        )
        message.reject_log_error(logger, self.connection_errors)
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
