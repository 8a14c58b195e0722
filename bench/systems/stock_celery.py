"""Stock Celery: default settings, same Celery version as the platform."""

import os

from celery import Celery

from bench.systems.counters import count, record_pickup

app = Celery("stock", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"])


@app.task(name="bench.noop")
def noop():
    count()


@app.task(name="bench.pickup")
def pickup(sent_at):
    record_pickup(sent_at)
