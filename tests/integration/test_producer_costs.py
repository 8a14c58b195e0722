"""The producer's two savings over stock Celery keep results and publishing correct."""

from celery_tasks.cert import probe
from harness.processes import wait_for


def test_enqueue_does_not_subscribe_and_get_still_reads_the_result(workers, client_app):
    consumer = client_app.backend.result_consumer
    before = set(getattr(consumer, "subscribed_to", ()))
    results = [probe.whoami.delay() for _ in range(20)]
    # Stock Celery subscribes to each of these 20 result channels inside delay().
    assert set(getattr(consumer, "subscribed_to", ())) == before
    # The task finished before anyone waited: get() subscribes, then reads the stored result.
    wait_for(lambda: all(r.state == "SUCCESS" for r in results), 20, "all 20 probes to finish")
    assert {r.get(timeout=5)["queue"] for r in results} == {"cert"}
    # And when get() is called before the task finishes, the published result wakes it.
    assert probe.whoami.delay().get(timeout=20)["queue"] == "cert"


def test_publishing_reuses_one_redis_client_per_channel(workers, client_app):
    with client_app.producer_or_acquire() as producer:
        channel = producer.channel
        probe.whoami.apply_async(producer=producer)
        first = channel._sync_client
        probe.whoami.apply_async(producer=producer)
        assert first is not None
        assert channel._sync_client is first


def test_workers_call_scripts_by_sha_and_survive_a_flushed_script_cache(workers, redis_url):
    """The fetch script is ~1.5 KB: it goes over the wire once per Redis, not per fetch.
    A Redis that lost its scripts (restart, SCRIPT FLUSH) gets them again: the next
    fetch answers NOSCRIPT, the worker loads the script, and the task still runs."""
    import redis

    server = redis.Redis.from_url(redis_url)
    assert probe.whoami.delay().get(timeout=20)["queue"] == "cert"
    server.config_resetstat()
    server.script_flush()
    assert probe.whoami.delay().get(timeout=20)["queue"] == "cert"
    assert probe.whoami.delay().get(timeout=20)["queue"] == "cert"
    calls = {
        name.removeprefix("cmdstat_"): s["calls"] for name, s in server.info("commandstats").items()
    }
    assert "eval" not in calls, "a script was sent as source instead of by SHA"
    assert calls.get("evalsha", 0) > 0
    assert calls.get("script|load", calls.get("script", 0)) > 0  # reloaded after the flush
