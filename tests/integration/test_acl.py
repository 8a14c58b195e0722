"""Each site trusts the broker, not every other site: a redis-server of its own loads the
ACL file broker.acl writes (the one Ansible deploys), and each role's credentials are
tried against what that role must and must not do. The api site may send to api and
long_running only, as an inventory's allow-list would say.

A real api worker runs tasks as ``worker-api`` (fetch, leases, the delayed set, events,
control, results), and nothing else is needed: what the docs' security table says a
leaked credential can and cannot do is checked here."""

import hashlib
import os
import secrets
import time

import pytest
import redis
from celery import Celery

from harness.processes import Process, RedisServer, free_port, manage, wait_for
from platform_core.broker import acl, keys, transport
from platform_core.broker.leases import lease_keys
from platform_core.broker.scripts import ENQUEUE_UNIQUE
from platform_core.errors import SendNotAllowed

SENDS = {"api": ["api", "long_running"]}  # api may not send to cert
DB = 0
NOPERM = redis.exceptions.NoPermissionError


@pytest.fixture(scope="module")
def passwords():
    return {user: secrets.token_urlsafe(24) for user in acl.USERS}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory, passwords):
    directory = tmp_path_factory.mktemp("acl-redis")
    hashes = {user: [hashlib.sha256(pw.encode()).hexdigest()] for user, pw in passwords.items()}
    aclfile = directory / "users.acl"
    aclfile.write_text(acl.acl_file(hashes, SENDS, DB))
    port = free_port()
    server = RedisServer(directory, port, extra_args=("--aclfile", aclfile))  # AOF, as deployed
    server.url = f"redis://{acl.ADMIN}:{passwords[acl.ADMIN]}@127.0.0.1:{port}/{DB}"
    server.start()
    yield server
    server.stop_cleanly()


def login(server, passwords, user) -> redis.Redis:
    return redis.Redis(port=server.port, username=user, password=passwords[user])


def url(server, user, password) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/{DB}"


@pytest.fixture(scope="module")
def cert_state(acl_redis):
    """What the cert site has in Redis: a queued task, one held by a worker, a delayed
    one, a lease, its clock, a stored result."""
    admin = acl_redis.client()
    room = keys.Room("cert")
    admin.lpush("cert", b'{"secret": "cert data"}')
    admin.lpush(room.held("host:1:ab", "cert"), b'{"secret": "held"}')
    admin.zadd(room.delayed("cert"), {b'{"secret": "later"}': 1})
    admin.zadd(room.leases, {"host:1:ab": 2**40})
    admin.hset(room.clock, "offset", 0)
    admin.set("celery-task-meta-abc", b'{"result": "cert"}')
    return room


def answers(client) -> bool:
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


def refused(call) -> bool:
    try:
        call()
    except NOPERM:
        return True
    return False


def test_the_default_user_is_off(acl_redis):
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port).ping()


def test_a_restart_keeps_what_scripts_and_transactions_wrote(acl_redis, passwords):
    """Redis replays them from the append-only file as the default user (7.0): were it
    restricted, every fetch, lease and park would be gone after a restart."""
    from platform_core.broker.leases import Lease

    worker = login(acl_redis, passwords, acl.worker_user("api"))
    lease = Lease(worker, seconds=60, sweep_seconds=60)
    lease.take(["api"])  # RENEW: a script; Redis 7 writes its effects in MULTI/EXEC
    lease._stop.set()
    with worker.pipeline(transaction=True) as pipe:
        pipe.lpush("api", b"queued").hset(keys.Room("api").rejected, "bad-body", 1).execute()
    acl_redis.stop_cleanly()
    acl_redis.start()
    admin = acl_redis.client()
    assert admin.zscore(keys.Room("api").leases, lease.worker_id) is not None
    assert admin.lrange("api", 0, -1) == [b"queued"]
    assert admin.acl_log() == []
    admin.delete("api", keys.Room("api").rejected, *lease_keys(keys.Room("api")))


def test_a_site_cannot_read_take_or_delete_another_sites_work(acl_redis, passwords, cert_state):
    api = login(acl_redis, passwords, acl.worker_user("api"))
    room = cert_state
    held = room.held("host:1:ab", "cert")
    attempts = {
        "LRANGE cert": lambda: api.lrange("cert", 0, -1),
        "LPOP cert": lambda: api.lpop("cert"),
        "RPOP cert": lambda: api.rpop("cert"),
        "DEL cert": lambda: api.delete("cert"),
        "LMOVE cert → api": lambda: api.lmove("cert", "api"),
        "LRANGE held": lambda: api.lrange(held, 0, -1),
        "DEL held": lambda: api.delete(held),
        "ZRANGE delayed": lambda: api.zrange(room.delayed("cert"), 0, -1),
        "ZREM lease": lambda: api.zrem(room.leases, "host:1:ab"),
        "HSET clock": lambda: api.hset(room.clock, "offset", 10**9),
        "SCAN": lambda: api.scan(0),
        "KEYS": lambda: api.keys("*"),
        "FLUSHALL": lambda: api.flushall(),
        "CONFIG GET": lambda: api.config_get("requirepass"),
        "MONITOR": lambda: api.execute_command("MONITOR"),
        "ACL LIST": lambda: api.acl_list(),
        "broadcast a control command (shutdown)": lambda: api.publish(
            f"/{DB}.celery.pidbox", b"{}"
        ),
        "SADD a binding onto cert's exchange": lambda: api.sadd(
            "_kombu.binding.cert", "cert\x06\x16\x06\x16api"
        ),
    }
    allowed = [name for name, call in attempts.items() if not refused(call)]
    assert allowed == []
    admin = acl_redis.client()
    assert admin.llen("cert") == 1
    assert admin.llen(held) == 1


def test_a_site_cannot_listen_to_every_result_or_every_event(acl_redis, passwords):
    api = login(acl_redis, passwords, acl.worker_user("api"))

    def listens(how, channel) -> bool:
        pubsub = api.pubsub()
        try:
            getattr(pubsub, how)(channel)
            return pubsub.get_message(timeout=1) is not None
        except NOPERM:
            return False
        finally:
            pubsub.close()

    for pattern in ("celery-task-meta-*", f"/{DB}.celeryev/*", "*"):
        assert not listens("psubscribe", pattern), pattern
    assert not listens("subscribe", f"/{DB}.celeryev/task.received")  # others' task events
    pubsub = api.pubsub()  # a result it knows the id of: allowed
    pubsub.subscribe("celery-task-meta-known-id")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    pubsub.close()


def test_a_producer_outside_the_allow_list_gets_one_clear_line(acl_redis, passwords):
    transport.install()
    app = Celery("api-producer", broker=url(acl_redis, "worker-api", passwords["worker-api"]))
    app.conf.broker_connection_retry_on_startup = False
    try:
        with pytest.raises(SendNotAllowed) as refusal:
            app.send_task("celery_tasks.cert.probe.whoami", queue="cert", retry=False)
        message = str(refusal.value)
        assert "may not send to queue 'cert'" in message
        assert "worker-api" in message
        assert "\n" not in message
        assert passwords["worker-api"] not in message
        assert acl_redis.client().llen("cert") == 1  # cert_state's own, nothing added
        # Its own queue and long_running are fine.
        app.send_task("celery_tasks.api.probe.whoami", queue="api", retry=False)
        app.send_task("celery_tasks.long_running.probe.whoami", queue="long_running")
        assert acl_redis.client().llen("long_running") == 1
    finally:
        app.close()
        acl_redis.client().delete("api", "long_running")


def test_a_sender_takes_a_unique_key_only_where_it_may_push(acl_redis, passwords):
    """A unique enqueue (lua/enqueue_unique.lua) onto a queue the sender may push to takes
    that queue's uniqueness key; anywhere else it is refused, and the room's other keys
    stay out of reach."""
    api = login(acl_redis, passwords, acl.worker_user("api"))
    admin = acl_redis.client()
    allowed = keys.Room("long_running").unique("probe:1")
    try:
        first = ENQUEUE_UNIQUE(api, (allowed,), ("id-1", 60_000, b"{}", "long_running"))
        second = ENQUEUE_UNIQUE(api, (allowed,), ("id-2", 60_000, b"{}", "long_running"))
        assert (first, second) == (b"id-1", b"id-1")
        assert admin.llen("long_running") == 1
        other = keys.Room("cert").unique("probe:1")
        assert refused(lambda: ENQUEUE_UNIQUE(api, (other,), ("id-3", 60_000, b"{}", "cert")))
        assert refused(lambda: api.set(other, "id-3"))
        room = keys.Room("long_running")
        assert refused(lambda: api.zrange(room.delayed("long_running"), 0, -1))
        assert refused(lambda: api.hset(room.clock, "offset", 1))
        assert not admin.exists(other)
    finally:
        admin.delete("long_running", allowed)


def test_beat_may_push_to_every_queue_and_read_none(acl_redis, passwords, cert_state):
    beat = login(acl_redis, passwords, acl.BEAT)
    assert beat.lpush("pqs", b"{}") == 1
    assert refused(lambda: beat.publish(f"/{DB}.celery.pidbox", b"{}"))
    assert refused(lambda: beat.lrange("pqs", 0, -1))
    assert refused(lambda: beat.rpop("cert"))
    assert refused(lambda: beat.delete("pqs"))
    assert refused(lambda: beat.zrange(cert_state.delayed("cert"), 0, -1))
    beat.set(keys.BEAT_LEADER, "me", px=1000)  # its own keys: fine
    acl_redis.client().delete("pqs")


def test_the_metrics_user_reads_and_writes_nothing(acl_redis, passwords, cert_state):
    from platform_core.observe.queue_stats import read_snapshot

    metrics = login(acl_redis, passwords, acl.METRICS)
    snapshot = read_snapshot(metrics)
    assert snapshot.queues["cert"].depth == 1
    assert snapshot.queues["cert"].delayed == 1
    for call in (
        lambda: metrics.lpush("cert", b"x"),
        lambda: metrics.rpop("cert"),
        lambda: metrics.hset(cert_state.clock, "offset", 1),
        lambda: metrics.delete(cert_state.leases),
        lambda: metrics.lrange("cert", 0, -1),
        lambda: metrics.scan(0),
    ):
        assert refused(call)


def test_flower_sees_lengths_not_contents(acl_redis, passwords, cert_state):
    flower = login(acl_redis, passwords, acl.FLOWER)
    assert flower.llen("cert") == 1
    for call in (
        lambda: flower.lrange("cert", 0, -1),
        lambda: flower.lindex("cert", 0),
        lambda: flower.rpop("cert"),
        lambda: flower.lrange(cert_state.held("host:1:ab", "cert"), 0, -1),
        lambda: flower.get("celery-task-meta-abc"),
    ):
        assert refused(call)


def test_the_api_worker_runs_its_tasks_as_its_own_user(
    acl_redis, passwords, platform_env, tmp_path, cert_state
):
    """Fetch, leases, a delayed task, results, events and control, all as worker-api,
    with the password in a 0600 file: never in argv, the environment or the log."""
    secret = tmp_path / "redis-password"
    secret.write_text(passwords["worker-api"] + "\n")
    secret.chmod(0o600)
    plain_url = f"redis://127.0.0.1:{acl_redis.port}/{DB}"
    env = {
        **platform_env,
        "REDIS_URL": plain_url,
        "REDIS_USERNAME": "worker-api",
        "REDIS_PASSWORD_FILE": str(secret),
    }
    worker = Process("worker-api-acl", manage("runapiworker", "-c", "1"), env, tmp_path)
    try:
        wait_for(lambda: " ready." in worker.log() or not worker.alive(), 60, "the api worker")
        assert worker.alive(), worker.log()[-3000:]
        app = Celery("api-client", broker=url(acl_redis, "worker-api", passwords["worker-api"]))
        app.conf.result_backend = app.conf.broker_url
        now = app.send_task("celery_tasks.api.probe.whoami", queue="api")
        later = app.send_task("celery_tasks.api.probe.whoami", queue="api", countdown=3)
        assert now.get(timeout=30)["queue"] == "api"
        assert later.get(timeout=30)["queue"] == "api"
        app.close()
        # Only Flower commands workers: it asks, the api worker answers (as worker-api).
        flower = Celery("flower", broker=url(acl_redis, "flower", passwords["flower"]))
        replies = flower.control.inspect(timeout=2).ping() or {}
        flower.close()
        assert any(name.startswith("api@") for name in replies)
        time.sleep(1)
        log = worker.log()
        assert "no permissions" not in log, log[-3000:]
        for where, text in (
            ("argv", " ".join(open(f"/proc/{worker.popen.pid}/cmdline").read().split("\0"))),
            ("environment", open(f"/proc/{worker.popen.pid}/environ").read()),
            ("log", log),
        ):
            assert passwords["worker-api"] not in text, where
        assert acl_redis.client().zcard(cert_state.leases) == 1  # cert's lease untouched
        assert acl_redis.client().zcard(keys.Room("api").leases) == 1  # its own taken
    finally:
        worker.stop()
    assert os.stat(secret).st_mode & 0o077 == 0


def test_on_a_sentinel_a_site_may_ask_where_the_primary_is_and_nothing_else(
    acl_redis, passwords, tmp_path
):
    """The sentinels know the same users (a client logs in to them as to Redis), but a
    site's may only ask: not fail over, reset or reconfigure the broker."""
    import subprocess

    hashes = {user: [hashlib.sha256(pw.encode()).hexdigest()] for user, pw in passwords.items()}
    port = free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its own file
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor platform 127.0.0.1 {acl_redis.port} 1\n"
        f"sentinel auth-user platform {acl.SENTINEL}\n" + acl.sentinel_users(hashes)
    )
    sentinel = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
    )
    try:
        api = redis.Redis(port=port, username="worker-api", password=passwords["worker-api"])
        wait_for(lambda: answers(api), 10, "the sentinel")
        assert api.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "platform")
        for command in (
            ("SENTINEL", "FAILOVER", "platform"),
            ("SENTINEL", "RESET", "platform"),
            ("SENTINEL", "REMOVE", "platform"),
            ("SENTINEL", "SET", "platform", "quorum", "5"),
            ("SENTINEL", "CONFIG", "GET", "*"),
        ):
            assert refused(lambda command=command: api.execute_command(*command)), command
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port).ping()
    finally:
        sentinel.terminate()
        sentinel.wait(10)
