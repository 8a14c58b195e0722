"""`manage.py startsite` end to end, in a copy of the tree: the new site passes the
checks, `run<name>worker` starts its worker under its own settings, and a task sent by
name from another site lands on it."""

import json
import shutil
import subprocess
import sys

import pytest

from harness.processes import ROOT, wait_for

CODE = ("manage.py", "platform_core", "sites", "celery_tasks", "records")


@pytest.fixture
def tree(tmp_path):
    for name in CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def manage_in(tree, *args, env, timeout=60):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_new_site_runs_end_to_end(tree, platform_env, log_dir):
    created = manage_in(tree, "startsite", "kitchen", env=platform_env)
    assert created.returncode == 0, created.stderr
    assert "runkitchenworker" in created.stdout
    checked = manage_in(tree, "check", env=platform_env)
    assert checked.returncode == 0, checked.stderr

    log = (log_dir / "worker-kitchen.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runkitchenworker", "-c", "1"],
        cwd=tree,
        env=platform_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        send = (
            "import json; from sites.cert.celery_app import cert_app; "
            "r = cert_app.send_task('celery_tasks.kitchen.probe.whoami'); "
            "print(json.dumps(r.get(timeout=60)))"
        )
        sent = wait_for(
            lambda: (
                (
                    done := manage_in(tree, "shell", "-c", send, env=platform_env, timeout=90)
                ).returncode
                == 0
                and done
            ),
            120,
            "the kitchen worker to run the probe",
            interval=2,
        )
        reply = json.loads(sent.stdout.strip().splitlines()[-1])
        assert reply["site"] == "kitchen", reply
        assert reply["settings_module"] == "sites.kitchen.settings", reply
        assert reply["queue"] == "kitchen", reply
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
