import pytest

from platform_core.config.environment import environment
from platform_core.config.queues import DEFAULT_LONG_RUNNING_SITE, app_path
from platform_core.processes.cli import with_default_app, with_worker_alias_expanded


@pytest.fixture(autouse=True)
def fresh_environment():
    """These tests change the environment: read it again, and again after them."""
    environment.cache_clear()
    yield
    environment.cache_clear()


def test_celery_without_an_app_gets_the_long_running_sites(monkeypatch):
    monkeypatch.setenv("LONG_RUNNING_SITE", "pqs")
    assert with_default_app(["inspect", "ping"]) == ["-A", app_path("pqs"), "inspect", "ping"]


def test_celery_with_an_app_keeps_it():
    for args in (["-A", "x:y", "status"], ["--app=x:y", "status"], ["--app", "x:y", "status"]):
        assert with_default_app(args) == args


def test_an_unknown_long_running_site_falls_back_to_the_default(monkeypatch):
    # The worker's own start-up names the bad setting; an inspect still works.
    monkeypatch.setenv("LONG_RUNNING_SITE", "kitchen")
    assert with_default_app(["status"])[:2] == ["-A", app_path(DEFAULT_LONG_RUNNING_SITE)]


def test_run_site_worker_is_runworker_site():
    assert with_worker_alias_expanded(["manage", "rungreendoorworker", "-l", "info"]) == [
        "manage",
        "runworker",
        "green_door",
        "-l",
        "info",
    ]
    assert with_worker_alias_expanded(["manage", "migrate"]) == ["manage", "migrate"]
