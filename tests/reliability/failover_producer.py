"""A producer process for the broker failover drill: sends a stream of drill tasks at a
fixed rate and writes one JSON line per send (when it was called, when it returned, and
whether it raised) to ``--out``.

``--via platform``: the site's own app (Django settings from the environment, so
``REDIS_URL`` in the sentinel form, ``PLATFORM_BROKER_*``), i.e. the platform's producer.
``--via stock``: a plain Celery app on kombu's own ``SentinelTransport``, importing
nothing from the project.

Every ``--delayed-every``-th task has a ``--countdown``; ``--long-count`` tasks that run
``--long-seconds`` are sent ``--long-at`` seconds in, so that some are running when the
drill kills the primary. A send that raises is not retried: it counts as refused.
"""

import argparse
import json
import os
import time


def stock_app(url: str, master_name: str, password: str):
    from celery import Celery

    app = Celery("stock-producer", broker=url)
    app.conf.broker_transport = "kombu.transport.redis:SentinelTransport"
    app.conf.broker_transport_options = {
        "master_name": master_name,
        "sentinel_kwargs": {"password": password},
    }
    app.conf.broker_connection_retry_on_startup = True
    return app


def platform_app(site: str):
    import importlib

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"sites.{site}.settings")
    django.setup()
    return getattr(importlib.import_module(f"sites.{site}.celery_app"), f"{site}_app")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--via", choices=["platform", "stock"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--queue", default="cert")
    parser.add_argument("--task", default="celery_tasks.cert.drills.record")
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=18)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--delayed-every", type=int, default=4)
    parser.add_argument("--countdown", type=float, default=5)
    parser.add_argument("--long-at", type=float, default=5)
    parser.add_argument("--long-count", type=int, default=2)
    parser.add_argument("--long-seconds", type=float, default=3)
    parser.add_argument("--url", default="")
    parser.add_argument("--master-name", default="platform")
    parser.add_argument("--password", default="")
    options = parser.parse_args()

    if options.via == "stock":
        app = stock_app(options.url, options.master_name, options.password)
    else:
        app = platform_app(options.queue)
    # Connect before the clock starts: the stream measures the failover, not start-up.
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)

    out = open(options.out, "w", encoding="utf-8")
    out.write(json.dumps({"start": time.time()}) + "\n")
    out.flush()

    def send(kind, seconds, countdown=None):
        called = time.time()
        line = {"kind": kind, "called": called, "countdown": countdown, "seconds": seconds}
        try:
            result = app.send_task(
                options.task,
                args=[options.token, seconds],
                queue=options.queue,
                countdown=countdown,
            )
            line.update(ok=True, id=result.id)
        except Exception as exc:  # a refused send is data here, not a crash
            line.update(ok=False, error=f"{exc.__class__.__name__}: {exc}"[:500])
        line["returned"] = time.time()
        out.write(json.dumps(line) + "\n")
        out.flush()

    begun = time.monotonic()
    next_at, sent, long_sent = begun, 0, False
    while time.monotonic() - begun < options.duration:
        if not long_sent and time.monotonic() - begun >= options.long_at:
            for _ in range(options.long_count):
                send("long", options.long_seconds)
            long_sent = True
        sent += 1
        if options.delayed_every and sent % options.delayed_every == 0:
            send("delayed", options.seconds, options.countdown)
        else:
            send("immediate", options.seconds)
        # A fixed rate; after a blocked send, carry on at the rate, no burst to catch up.
        next_at = max(next_at + 1 / options.rate, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.write(json.dumps({"end": time.time()}) + "\n")
    out.close()


if __name__ == "__main__":
    main()
