"""Huey with Redis, as documented."""

import os

from huey import RedisHuey

from bench.systems.counters import count, record_pickup

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"], results=False)


@huey.task()
def noop():
    count()


@huey.task()
def pickup(sent_at):
    record_pickup(sent_at)
