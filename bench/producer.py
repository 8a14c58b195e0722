"""A fresh "web-like" process that enqueues: python -m bench.producer SYSTEM MODE N.

Prints one JSON object. Modes: enqueue (µs per call), throughput (tasks/s from the
first enqueue to the last execution), pickup (ms from send to start, one at a time),
flood QUEUE (N tasks onto another queue, for the isolation figure). With
BENCH_FLOODED_QUEUES=a,b pickups are only sampled while those queues hold a backlog.
The platform's figures also name the ``platform_core`` they ran (``bench.baseline``).
"""

import json
import os
import statistics
import sys
import time

import redis


def senders(system):
    """(send a no-op, send a pickup probe) for ``system``."""
    if system == "platform":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.cert.settings")
        import django

        django.setup()
        from bench.systems.platform_tasks import noop, pickup

        return noop.delay, pickup.delay
    if system == "celery":
        from bench.systems.stock_celery import noop, pickup

        queue = os.environ.get("BENCH_QUEUE")  # the fleet's workers consume named queues
        if queue:
            return (
                lambda: noop.apply_async(queue=queue),
                lambda sent_at: pickup.apply_async((sent_at,), queue=queue),
            )
        return noop.delay, pickup.delay
    if system == "dramatiq":
        from bench.systems.dramatiq_app import noop, pickup

        return noop.send, pickup.send
    if system == "huey":
        from bench.systems.huey_app import noop, pickup

        return noop, pickup
    raise SystemExit(f"unknown system {system}")


def enqueue_cost(send, n):
    for _ in range(50):  # warm connections and caches
        send()
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            send()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return {"enqueue_us": statistics.median(runs), "runs_us": runs}


def throughput(send, n, client, timeout=300):
    client.delete("bench:count")
    started = time.perf_counter()
    for _ in range(n):
        send()
    deadline = started + timeout
    done = polls = 0
    while time.perf_counter() < deadline:
        done = int(client.get("bench:count") or 0)
        polls += 1
        if done >= n:
            break
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    # polls: the GETs above, in Redis's figures too; a slower run makes more.
    return {"tasks_per_s": done / elapsed, "sent": n, "ran": done, "polls": polls}


def pickup(send_pickup, n, client, flooded=()):
    """``flooded``: queues whose backlog must last; sampling stops when it is gone."""
    client.delete("bench:pickup")
    for index in range(n):
        if flooded and not sum(client.llen(queue) for queue in flooded):
            break
        send_pickup(time.time())
        deadline = time.perf_counter() + 10
        while client.llen("bench:pickup") <= index and time.perf_counter() < deadline:
            time.sleep(0.0002)
        if client.llen("bench:pickup") <= index:
            break  # not picked up within 10 s: no worker consumes it; report what we have
    samples = sorted(float(x) * 1000 for x in client.lrange("bench:pickup", 0, -1))
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "samples": len(samples),
    }


def flooder(system, queue):
    """Sends one no-op-like task to ``queue`` (platform: by name, as any site would)."""
    if system == "platform":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.cert.settings")
        import django

        django.setup()
        from sites.cert.celery_app import cert_app

        name = f"celery_tasks.{queue}.probe.whoami"
        return lambda: cert_app.send_task(name)
    if system == "celery":
        from bench.systems.stock_celery import noop

        return lambda: noop.apply_async(queue=queue)
    raise SystemExit(f"no flood for {system}")


def main():
    system, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "flood":
        send = flooder(system, sys.argv[4])
        for _ in range(n):
            send()
        print(json.dumps({"flooded": n}))
        return
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    send, send_pickup = senders(system)
    if mode == "enqueue":
        result = enqueue_cost(send, n)
    elif mode == "throughput":
        result = throughput(send, n, client)
    elif mode == "pickup":
        flooded = [q for q in os.environ.get("BENCH_FLOODED_QUEUES", "").split(",") if q]
        result = pickup(send_pickup, n, client, flooded)
    else:
        raise SystemExit(f"unknown mode {mode}")
    if system == "platform":  # which tree's platform sent (the harness checks it)
        result["platform_core"] = sys.modules["platform_core"].__file__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
