"""`manage.py check` reports tasks the convention would not find, with the fix."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from platform_core.tasks.checks import check_task_placement
from platform_core.tasks.registry import platform_apps


@pytest.fixture
def cleanup_tasks():
    added = []
    yield added
    for app, name in added:
        app.tasks.unregister(name)


def _define(app, name, added):
    def stray():
        return None

    app.task(name=name)(stray)
    app.tasks  # noqa: B018 - finalize so the task is registered now
    added.append((app, name))


def test_the_shipped_tasks_pass_the_check():
    assert check_task_placement(None) == []
    call_command("check")


def test_task_decorated_with_another_sites_app_is_reported(cleanup_tasks):
    _define(platform_apps()["cert"], "celery_tasks.pqs.stray.stray", cleanup_tasks)
    errors = check_task_placement(None)
    assert [e.id for e in errors] == ["platform_core.E001"]
    assert "decorated with @cert_app.task" in errors[0].msg
    assert "from sites.pqs.celery_app import pqs_app" in errors[0].hint
    with pytest.raises(SystemCheckError):
        call_command("check")


def test_task_outside_the_convention_is_reported(cleanup_tasks):
    _define(platform_apps()["api"], "helpers.send_mail", cleanup_tasks)
    errors = check_task_placement(None)
    assert [e.id for e in errors] == ["platform_core.E002"]
    assert "Move the module into celery_tasks/api/" in errors[0].hint


def test_a_task_is_registered_on_its_own_app_only():
    apps = platform_apps()
    for queue, app in apps.items():
        own = {name for name in app.tasks if name.startswith("celery_tasks.")}
        assert own, queue
        assert all(name.startswith(f"celery_tasks.{queue}.") for name in own)
