"""manage.py ratelimit: a limit set, listed and cleared goes to the queue's room in Redis
(what every worker reads); a rate or a name that does not parse is one line, nothing
changed."""

import subprocess

import pytest
import redis

from harness.processes import manage
from platform_core.broker import keys

pytestmark = pytest.mark.django_db(transaction=True)

TASK = "celery_tasks.pqs.probe.whoami"


def ratelimit(platform_env, *args):
    return subprocess.run(
        manage("ratelimit", *args),
        env={**platform_env, "DJANGO_SETTINGS_MODULE": "sites.pqs.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_set_list_and_clear(platform_env, redis_url):
    client = redis.Redis.from_url(redis_url)
    rates = keys.Room("pqs").rates
    try:
        assert ratelimit(platform_env, "set", TASK, "30/m").returncode == 0
        assert ratelimit(platform_env, "set", "pqs", "100/s").returncode == 0
        assert client.hgetall(rates) == {TASK.encode(): b"30/m", b"*": b"100/s"}
        listed = ratelimit(platform_env, "list").stdout.splitlines()
        assert f"{TASK}  30/m  (runtime)" in listed
        assert "pqs  100/s  (runtime)" in listed
        assert ratelimit(platform_env, "clear", TASK).returncode == 0
        assert client.hgetall(rates) == {b"*": b"100/s"}
    finally:
        ratelimit(platform_env, "clear", "pqs")
    assert client.hgetall(rates) == {}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", TASK, "fast"), f"{TASK}: 'fast' is not a rate; write N/s, N/m or N/h"),
        (("set", "celery_tasks.nowhere.x", "1/s"), "'celery_tasks.nowhere.x' is neither a queue"),
        (("set", TASK, "0/s"), "'0/s' is not a rate"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(platform_env, redis_url, args, says):
    done = ratelimit(platform_env, *args)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: ")
    assert says in line
    assert redis.Redis.from_url(redis_url).hgetall(keys.Room("pqs").rates) == {}
