"""What every benchmarked no-op task does, identically for every system: count itself
(so the run can check that every task ran) or record its pickup latency."""

import os
import time

import redis

_client = None


def _redis():
    global _client
    if _client is None:  # one connection per worker process, as any real task would
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=10)
    return _client


def count():
    _redis().incr("bench:count")


def record_pickup(sent_at: float):
    _redis().rpush("bench:pickup", time.time() - sent_at)
