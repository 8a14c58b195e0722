"""How a worker is started: the tools it execs come from the same place it runs from."""

import sys

import pytest

from platform_core.processes import launcher


class Execed(Exception):
    pass


@pytest.fixture
def execed(monkeypatch):
    calls = []

    def fake_exec(path, argv, env):
        calls.append(argv)
        raise Execed

    monkeypatch.setattr(launcher.os, "execvpe", fake_exec)
    return calls


def test_reload_from_the_single_file_app_runs_watchfiles_from_it(monkeypatch, execed):
    # Deployed (and in the Vagrant box) the code runs from platform.pyz and the system
    # python3 has no watchfiles: `python3 -m watchfiles` failed every --reload worker.
    monkeypatch.setenv("PLATFORM_ENTRY", "/opt/platform/platform.pyz")
    argv = launcher.celery_argv("cert", "worker")
    with pytest.raises(Execed):
        launcher.exec_celery(argv, "sites.cert.settings", reload=True)
    assert execed[0][:3] == [sys.executable, "/opt/platform/platform.pyz", "watchfiles"]
    command = next(arg for arg in execed[0] if " celery " in arg)  # what it restarts
    assert " /opt/platform/platform.pyz celery -A sites.cert" in command


def test_reload_from_a_checkout_runs_watchfiles_as_a_module(monkeypatch, execed):
    monkeypatch.delenv("PLATFORM_ENTRY", raising=False)
    with pytest.raises(Execed):
        launcher.exec_celery(launcher.celery_argv("cert", "worker"), "x", reload=True)
    assert execed[0][:3] == [sys.executable, "-m", "watchfiles"]
