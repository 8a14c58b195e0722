"""`manage drill`: what the Molecule drills read (executions, and where each task started)."""

import json
import socket
import time
import uuid
from io import StringIO

from django.core.management import call_command

from harness.processes import wait_for


def _drill(*args) -> str:
    out = StringIO()
    call_command("drill", *args, stdout=out)
    return out.getvalue()


def test_starts_tell_where_and_when_each_task_began(workers):
    token = uuid.uuid4().hex
    before = time.time()
    _drill("send", "--token", token, "--queue", "long_running", "--seconds", "1")
    _drill("send", "--token", token, "--queue", "cert", "--count", "2")

    wait_for(lambda: json.loads(_drill("report", "--token", token))["executed"] == 3, 30, "3 runs")
    report = json.loads(_drill("report", "--token", token))
    starts = json.loads(_drill("starts", "--token", token))

    assert report == {"sent": 3, "executed": 3, "lost": 0, "duplicates": 0, "runs": 3}
    assert len(starts) == 3
    for runs in starts.values():
        assert len(runs) == 1  # each started once
        assert runs[0]["host"] == socket.gethostname()
        assert before <= runs[0]["at"] <= time.time()


def test_starts_of_an_unknown_token_are_empty(redis_url):
    assert json.loads(_drill("starts", "--token", uuid.uuid4().hex)) == {}
