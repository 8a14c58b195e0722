"""Celery's Redis result backend, subscribing to a result only when someone waits for it.

Stock Celery subscribes to every task's result channel inside ``apply_async``: one
extra Redis round trip per enqueue (~150 µs), and a subscription kept for every task a
web process sends even though it never reads the result. Here ``AsyncResult.get()``
subscribes first and then reads the stored result (Celery's own order in
``add_pending_result`` → ``on_wait_for_pending``), so no result is missed.

fence: celery-result-backend (platform_core/config/fences.py). Installed per app through
Celery's hook, the app loader's ``override_backends`` (``celery.app.backends.by_name``
consults it), so Celery's global ``BACKEND_ALIASES`` and any other app in the process
(e.g. a plain Celery client) are left as they are.
"""

import math
from time import monotonic

from celery import states
from celery.backends.redis import RedisBackend, ResultConsumer, SentinelBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

from platform_core.broker import clients
from platform_core.broker.ack_results import ResultWrite
from platform_core.tasks.result_handback import hand_back

LAZY_BACKEND = "platform_core.tasks.results:LazyRedisBackend"
LAZY_SENTINEL_BACKEND = "platform_core.tasks.results:LazySentinelBackend"


# While someone waits, the stored results are read this often besides the channels.
STORED_RESULTS_EVERY_SECONDS = 1.0


class CheckingResultConsumer(ResultConsumer):
    """Celery's result consumer, which also reads the stored results of what it waits for
    once a second (one MGET), as Celery itself does after a reconnect: a result whose
    PUBLISH did not wake the waiter is still read. Seen on TLS between hosts: Celery's
    wait on the raw socket sometimes missed a result (1 of 10 probe runs waited out its
    60 s for a task that had succeeded); a result published while the channel was being
    re-subscribed after a failover is the same case.

    fence: celery-result-consumer (platform_core/config/fences.py)."""

    _stored_read_at = 0.0

    def drain_events(self, timeout=None):
        super().drain_events(timeout)
        if monotonic() - self._stored_read_at >= STORED_RESULTS_EVERY_SECONDS:
            self._stored_read_at = monotonic()
            self._read_stored()

    def _read_stored(self):
        with self._locked():
            waited = list(self.subscribed_to)
            if not waited:
                return
            with self.reconnect_on_error():
                for meta in self.backend.client.mget(waited):
                    if meta:
                        self.on_state_change(self._decode_result(meta), None)


class LazyRedisBackend(RedisBackend):
    ResultConsumer = CheckingResultConsumer

    def on_task_call(self, producer, task_id):
        return {}

    @property
    def stores_in_one_round_trip(self) -> bool:
        # The script reads a stored status as JSON (cjson): other serializers, or
        # compressed results, take Celery's own two round trips.
        return self.serializer == "json" and not self.compression

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        """Celery's result write (read the stored result, keep a SUCCESS, else SET and
        PUBLISH) as one script: one round trip and one command instead of two and five;
        a task's final result in a worker goes back to the main process and is stored
        with the message's acknowledgement (tasks.result_handback).

        fence: celery-result-store (platform_core/config/fences.py)."""
        if not self.stores_in_one_round_trip:
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        write = ResultWrite(
            self.get_key_for_task(task_id), value, math.ceil(expires * 1000) if expires else 0
        )
        if not hand_back(task_id, state, request, write):  # tasks.result_handback
            self.ensure(self.store_now, (write,))
        return result

    def store_now(self, write: ResultWrite) -> None:
        write.store(self.client)  # self.client: a new one after Celery reconnects


class LazySentinelBackend(LazyRedisBackend, SentinelBackend):
    """The same on a primary named by Sentinel (``sentinel://`` result URLs), through
    clients.Sentinel: the sentinels take the primary's password and timeouts (so no copy
    of the secret sits in ``result_backend_transport_options``, which Flower shows).

    fence: celery-result-backend-sentinel (platform_core/config/fences.py)."""

    def _get_sentinel_instance(self, **params):
        params = dict(params)
        hosts = params.pop("hosts")
        given = self._transport_options.get("sentinel_kwargs")
        return clients.Sentinel(
            [(host["host"], host["port"]) for host in hosts],
            min_other_sentinels=self._transport_options.get("min_other_sentinels", 0),
            sentinel_kwargs=given or clients.sentinel_kwargs_from(params),
            **params,
        )


def install(app) -> None:
    """Make ``app``'s redis://, rediss:// and sentinel:// result URLs use the lazy
    backends."""
    loader = app.loader
    # A new dict on the instance: BaseLoader.override_backends is one class-level dict.
    loader.override_backends = {
        **loader.override_backends,
        "redis": LAZY_BACKEND,
        "rediss": LAZY_BACKEND,
        "sentinel": LAZY_SENTINEL_BACKEND,
    }
