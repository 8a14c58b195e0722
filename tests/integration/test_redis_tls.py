"""TLS to Redis: a redis-server with a TLS port only (``port 0``), a certificate from a
throwaway CA. The platform's clients verify it (PLATFORM_REDIS_CA_FILE); a plain client
and a client trusting another CA are refused. The same through a Sentinel on TLS (its
own connections to Redis too: tls-replication), as Ansible deploys it."""

import subprocess
import sys
import textwrap

import pytest
import redis
import redis.sentinel

from harness.processes import Process, RedisServer, free_port, json_output, manage, wait_for
from harness.tls import make_ca, make_server
from platform_core.broker import clients
from platform_core.config.queues import WORKER_COMMANDS


class TLSRedisServer(RedisServer):
    """RedisServer answering on a TLS port only (the plaintext port off)."""

    def __init__(self, directory, port, files):
        super().__init__(
            directory,
            port,
            appendonly=False,
            extra_args=[
                "--port", "0",
                "--tls-port", str(port),
                "--tls-cert-file", str(files.cert),
                "--tls-key-file", str(files.key),
                "--tls-ca-cert-file", str(files.ca_cert),
                "--tls-auth-clients", "optional",
            ],
        )  # fmt: skip
        self.files = files
        self.url = f"rediss://127.0.0.1:{port}/0"

    def ping(self):
        try:
            return redis.Redis.from_url(
                self.url, ssl_ca_certs=str(self.files.ca_cert), socket_timeout=1
            ).ping()
        except redis.RedisError:
            return False


TLS_SETTINGS = (
    "port 0\ntls-port {port}\ntls-cert-file {files.cert}\ntls-key-file {files.key}\n"
    "tls-ca-cert-file {files.ca_cert}\ntls-auth-clients optional\ntls-replication yes\n"
)


@pytest.fixture(scope="module")
def tls_sentinel(tls_redis, tmp_path_factory):
    """One Sentinel on TLS only, watching tls_redis as the primary "platform"."""
    directory = tmp_path_factory.mktemp("sentinel-tls")
    port = free_port()
    config = directory / "sentinel.conf"
    config.write_text(
        TLS_SETTINGS.format(port=port, files=tls_redis.files)
        + f"bind 127.0.0.1\ndir {directory}\n"
        + f"sentinel monitor platform 127.0.0.1 {tls_redis.port} 1\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    sentinel = redis.Redis(
        "127.0.0.1", port, ssl=True, ssl_ca_certs=str(tls_redis.files.ca_cert), socket_timeout=1
    )

    def names_the_primary():
        try:
            return sentinel.sentinel_get_master_addr_by_name("platform")
        except redis.RedisError:
            return None

    wait_for(names_the_primary, 10, "the TLS sentinel to name the primary")
    # Listed twice: the platform's SentinelChannel reads kombu's failover list, which a
    # one-sentinel URL leaves empty (deployments list three or more).
    yield f"sentinel://127.0.0.1:{port};sentinel://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    files = make_server(tmp_path_factory.mktemp("tls"))
    server = TLSRedisServer(tmp_path_factory.mktemp("redis-tls"), free_port(), files)
    server.start()
    yield server
    server.stop_cleanly()


def test_a_platform_client_with_the_ca_file_verifies_and_works(tls_redis, settings):
    settings.PLATFORM_REDIS_CA_FILE = str(tls_redis.files.ca_cert)
    # redis:// and rediss:// alike: the CA file is what turns TLS on.
    for url in (tls_redis.url, tls_redis.url.replace("rediss://", "redis://")):
        client = clients.connect(url)
        try:
            client.set("tls:probe", "1")
            assert client.get("tls:probe") == b"1"
            assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
        finally:
            client.close()


def test_a_sentinel_client_verifies_the_sentinel_and_the_primary(tls_redis, tls_sentinel, settings):
    settings.PLATFORM_REDIS_CA_FILE = str(tls_redis.files.ca_cert)
    client = clients.connect(tls_sentinel)
    try:
        client.set("tls:sentinel-probe", "1")
        assert client.get("tls:sentinel-probe") == b"1"
    finally:
        client.close()
    settings.PLATFORM_REDIS_CA_FILE = ""
    with pytest.raises(redis.sentinel.MasterNotFoundError, match="did not answer"):
        clients.connect(tls_sentinel, probe=True).ping()


def test_a_plain_client_is_refused(tls_redis, settings):
    settings.PLATFORM_REDIS_CA_FILE = ""
    client = clients.connect(tls_redis.url.replace("rediss://", "redis://"), probe=True)
    with pytest.raises(redis.ConnectionError):
        client.ping()  # the server closes a connection that does not start TLS


def test_a_client_trusting_another_ca_is_refused(tls_redis, settings, tmp_path):
    _, _, other_ca = make_ca(tmp_path, "other-ca")
    settings.PLATFORM_REDIS_CA_FILE = str(other_ca)
    client = clients.connect(tls_redis.url, probe=True)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()


PRODUCER = textwrap.dedent(
    """
    import json
    import django
    django.setup()
    from platform_core.tasks.registry import platform_apps
    result = platform_apps()["cert"].send_task("celery_tasks.cert.probe.whoami", queue="cert")
    print(json.dumps(result.get(timeout=30)))
    """
)


@pytest.mark.parametrize("through", ["redis", "sentinel"])
def test_a_worker_runs_a_task_over_tls(through, tls_redis, tls_sentinel, platform_env, log_dir):
    env = {
        **platform_env,
        "REDIS_URL": tls_redis.url if through == "redis" else tls_sentinel,
        "PLATFORM_REDIS_CA_FILE": str(tls_redis.files.ca_cert),
    }
    worker = Process(
        f"worker-cert-tls-{through}", manage(WORKER_COMMANDS["cert"], "-c", "1"), env, log_dir
    )
    try:
        wait_for(lambda: " ready." in worker.log(), 60, "the worker on TLS to be ready")
        # The producer and its result in another process with the same settings.
        env["DJANGO_SETTINGS_MODULE"] = "sites.cert.settings"
        reply = json_output([sys.executable, "-c", PRODUCER], env, timeout=60)
        assert reply["queue"] == "cert"
        assert reply["worker"].startswith("cert@")
    finally:
        worker.stop()
    assert "SSL" not in worker.log(), worker.log()[-3000:]  # no TLS error on its way
