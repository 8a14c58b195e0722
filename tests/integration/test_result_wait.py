"""A caller waiting for a result gets it even when the PUBLISH that announces it never
wakes the wait (seen over TLS between hosts): the stored result is read once a second
(tasks.results.CheckingResultConsumer)."""

import json
import threading
import time
import uuid

import redis


def test_a_stored_result_whose_publish_was_missed_is_still_read(client_app, redis_url):
    task_id = str(uuid.uuid4())
    result = client_app.AsyncResult(task_id)
    meta = {"status": "SUCCESS", "result": 42, "task_id": task_id, "traceback": None}

    def store_without_publishing():
        time.sleep(0.5)  # after get() subscribed and found nothing stored
        client = redis.Redis.from_url(redis_url)
        client.set(f"celery-task-meta-{task_id}", json.dumps(meta), ex=60)
        client.close()

    threading.Thread(target=store_without_publishing).start()
    started = time.monotonic()
    assert result.get(timeout=10) == 42
    assert time.monotonic() - started < 3
    redis.Redis.from_url(redis_url).delete(f"celery-task-meta-{task_id}")
