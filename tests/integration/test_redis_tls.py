"""TLS to Redis: a redis-server with a TLS port only (``port 0``), a certificate from a
throwaway CA. The platform's clients verify it (PLATFORM_REDIS_CA_FILE); a plain client
and a client trusting another CA are refused."""

import sys
import textwrap

import pytest
import redis

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


def test_a_worker_runs_a_task_over_tls(tls_redis, platform_env, log_dir):
    env = {
        **platform_env,
        "REDIS_URL": tls_redis.url,
        "PLATFORM_REDIS_CA_FILE": str(tls_redis.files.ca_cert),
    }
    worker = Process("worker-cert-tls", manage(WORKER_COMMANDS["cert"], "-c", "1"), env, log_dir)
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
