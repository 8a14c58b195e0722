"""`manage drill`: what the Molecule drills read (executions, and where each task started)."""

import json
import socket
import threading
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


def test_a_stream_sends_at_its_rate_until_told_to_stop_and_records_each_send(workers, tmp_path):
    token, out, stop = uuid.uuid4().hex, tmp_path / "sends", tmp_path / "stop"
    stopper = threading.Timer(1.0, stop.touch)
    stopper.start()
    said = _drill(
        "stream", "--token", token, "--out", str(out), "--stop-file", str(stop), "--interval", "0.1"
    )
    stopper.join()

    sends = [line.split() for line in out.read_text().splitlines()]
    assert 5 <= len(sends) <= 12, sends  # ~10 in the 1 s before the stop file
    assert all(float(called) <= float(returned) for called, returned, _ in sends)
    assert [ok for *_, ok in sends] == ["0"] * len(sends)  # 0: acknowledged
    assert said == f"streamed {len(sends)} acknowledged sends\n"
    wait_for(
        lambda: json.loads(_drill("report", "--token", token))["executed"] == len(sends), 30, "runs"
    )
    assert json.loads(_drill("report", "--token", token))["duplicates"] == 0
