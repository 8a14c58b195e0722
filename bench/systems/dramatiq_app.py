"""Dramatiq with its Redis broker, as documented."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.systems.counters import count, record_pickup

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor
def noop():
    count()


@dramatiq.actor
def pickup(sent_at):
    record_pickup(sent_at)
