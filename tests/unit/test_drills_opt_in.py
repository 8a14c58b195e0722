"""Fault drills are opt-in per host (PLATFORM_DRILLS, platform_core.config.drills): on in
development, off with DJANGO_ENV=production; where off, no app registers a drill, even
after the system checks imported every task module, and `manage drill` says how to
enable them."""

import os
import sys
import textwrap

import pytest
from celery.exceptions import NotRegistered
from django.core.management import CommandError, call_command

from harness.processes import json_output
from platform_core.config.drills import DRILLS_OFF, is_drill
from platform_core.tasks.eager import apply_by_name

# A fresh interpreter loads what a worker process loads: the system checks (a worker
# command runs them in the process that becomes the worker), then each app's modules.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.conf import settings
    from platform_core.tasks.checks import check_task_placement
    from platform_core.tasks.registry import platform_apps

    errors = [f"{error.id}: {error.msg}" for error in check_task_placement(None)]
    for app in platform_apps().values():
        app.loader.import_default_modules()
    print(json.dumps({
        "setting": settings.PLATFORM_DRILLS,
        "registered": sorted(
            name for app in platform_apps().values() for name in app.tasks
            if name.startswith("celery_tasks.")
        ),
        "modules": sorted(name for name in sys.modules if name.startswith("celery_tasks.")),
        "check": errors,
    }))
    """
)


def _loaded(**variables: str) -> dict:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": ".",
        "DJANGO_SETTINGS_MODULE": "sites.cert.settings",
        "PLATFORM_VAR_DIR": os.environ["PLATFORM_VAR_DIR"],
        **variables,
    }
    return json_output([sys.executable, "-c", SCRIPT], env)


PRODUCTION = {"DJANGO_ENV": "production", "DJANGO_SECRET_KEY": "test-only-not-a-secret"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, True),  # DJANGO_ENV unset: development
        ({"DJANGO_ENV": "development"}, True),
        (PRODUCTION, False),
        ({**PRODUCTION, "PLATFORM_DRILLS": "1"}, True),
        ({"DJANGO_ENV": "development", "PLATFORM_DRILLS": "0"}, False),
    ],
    ids=["unset", "development", "production", "production-opted-in", "development-opted-out"],
)
def test_drills_default_on_in_development_and_off_in_production(variables, expected):
    loaded = _loaded(**variables)
    assert loaded["setting"] is expected
    drills = [name for name in loaded["registered"] if is_drill(name)]
    if expected:
        assert "celery_tasks.cert.drills.kill_worker" in drills
        assert "celery_tasks.long_running.drills.record" in drills
    else:
        assert drills == []
        assert [name for name in loaded["modules"] if is_drill(name)] == []
        assert "celery_tasks.cert.probe.whoami" in loaded["registered"]  # the rest is there
    assert loaded["check"] == []


def test_only_drill_modules_and_tasks_are_drills():
    assert is_drill("celery_tasks.cert.drills")
    assert is_drill("celery_tasks.cert.drills.kill_worker")
    assert is_drill("celery_tasks.long_running.drills.record")
    assert not is_drill("celery_tasks.cert.certificates.issue_certificate")
    assert not is_drill("celery_tasks.drills")
    assert not is_drill("platform_core.tasks.drills")


def test_manage_drill_says_how_to_enable_them_where_they_are_off(settings):
    settings.PLATFORM_DRILLS = False
    for action in ("send", "report", "runs", "starts"):
        with pytest.raises(CommandError) as refused:
            call_command("drill", action, "--token", "t")
        assert str(refused.value) == f"drill {action}: {DRILLS_OFF}"
    assert "\n" not in DRILLS_OFF
    assert "PLATFORM_DRILLS=1" in DRILLS_OFF
    assert "platform_drills: true" in DRILLS_OFF


def test_synchronous_mode_runs_no_drill_where_they_are_off(settings):
    settings.PLATFORM_DRILLS = False
    with pytest.raises(NotRegistered, match="drills are off on this host"):
        apply_by_name("celery_tasks.cert.drills.kill_worker")
