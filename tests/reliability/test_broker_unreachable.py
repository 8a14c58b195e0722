"""Promise 6: with USE_CELERY on and Redis down, enqueueing fails fast and says so."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from harness.processes import ROOT, free_port

SCRIPT = textwrap.dedent(
    """
    import time
    import django
    django.setup()
    from celery_tasks.cert.probe import whoami
    from platform_core.errors import BrokerUnavailable

    started = time.monotonic()
    try:
        whoami.delay()
        print("NOT RAISED")
    except BrokerUnavailable as exc:
        print(f"RAISED {time.monotonic() - started:.2f} {exc}")
    """
)


def _enqueue_with_broker_at(port):
    env = {
        **os.environ,
        "USE_CELERY": "1",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DJANGO_SETTINGS_MODULE": "sites.cert.settings",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(("RAISED", "NOT"))), "")
    assert line.startswith("RAISED"), result.stdout + result.stderr
    return float(line.split()[1]), line


def test_enqueue_with_redis_down_fails_fast(record_figure):
    seconds, line = _enqueue_with_broker_at(free_port())  # nothing listens: refused
    assert "was NOT enqueued" in line
    assert "CELERY_BROKER_URL" in line
    record_figure("enqueue with Redis down (connection refused)", seconds=seconds)
    assert seconds < 5


@pytest.fixture
def silent_broker():
    """A socket that accepts connections and never answers: a hung or half-dead peer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


def test_enqueue_with_a_hung_redis_is_bounded(silent_broker, record_figure):
    seconds, line = _enqueue_with_broker_at(silent_broker)
    assert "was NOT enqueued" in line
    record_figure("enqueue with a Redis that accepts and never answers", seconds=seconds)
    assert seconds < 15
