"""Stock Celery, the anchor of the broker failover drill: a tiny app on kombu's own
``SentinelTransport`` with late acks, importing nothing from the project.

    STOCK_BROKER_URL=sentinel://:pw@127.0.0.1:p1;... STOCK_BROKER_PASSWORD=pw \
    STOCK_LEDGER_URL=redis://127.0.0.1:p/0 python -m celery -A tests.reliability.stock_app worker

Its one task counts executions per token, as the platform's drills do, but in a separate
"ledger" Redis that the drill leaves alone: what it measures is the broker, not this write.
"""

import json
import os
import socket
import time

import redis
from celery import Celery

app = Celery("stock-anchor", broker=os.environ.get("STOCK_BROKER_URL", ""))
app.conf.update(
    broker_transport="kombu.transport.redis:SentinelTransport",
    broker_transport_options={
        "master_name": os.environ.get("STOCK_MASTER_NAME", "platform"),
        "sentinel_kwargs": {"password": os.environ.get("STOCK_BROKER_PASSWORD", "")},
    },
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_queue="stock",
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
)

_ledger = None


def ledger() -> redis.Redis:
    global _ledger
    if _ledger is None:
        _ledger = redis.Redis.from_url(os.environ["STOCK_LEDGER_URL"], socket_timeout=5)
    return _ledger


@app.task(bind=True, name="stock.record")
def record(self, token: str, seconds: float = 0) -> None:
    started_at = time.time()
    entry = {"task": self.request.id, "host": socket.gethostname(), "at": started_at}
    ledger().rpush(f"platform:drill:{token}:starts", json.dumps(entry))
    time.sleep(seconds)
    with ledger().pipeline() as pipe:
        pipe.hincrby(f"platform:drill:{token}", self.request.id, 1)
        pipe.hset(f"platform:drill:{token}:started_at", self.request.id, repr(started_at))
        pipe.execute()
