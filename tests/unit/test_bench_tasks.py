"""The benchmark's tasks (bench.systems.platform_tasks) are on no production worker, and
where the benchmark loads them they route to cert and pass the placement check."""

import os
import sys
import textwrap

import pytest

from harness.processes import json_output

BENCH_PREFIXES = ("bench.", "celery_tasks.cert.bench.")

# A fresh interpreter imports every queue's app and task modules as its worker does
# (the app's include list: every module under celery_tasks/<queue>/), then what the
# benchmark's cert worker adds with `--include`.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from platform_core.config.queues import QUEUES
    from platform_core.config.routing import route_by_task_name
    from platform_core.tasks.checks import check_task_placement
    from platform_core.tasks.registry import platform_apps

    def registered():
        return {
            queue: {name: task.__module__ for name, task in app.tasks.items()}
            for queue, app in platform_apps().items()
        }

    for app in platform_apps().values():
        app.loader.import_default_modules()
    production = registered()
    bench_loaded = sorted(m for m in sys.modules if m == "bench" or m.startswith("bench."))
    from bench.systems import platform_tasks
    print(json.dumps({
        "production": production,
        "bench_modules_in_production": bench_loaded,
        "with_bench": registered()["cert"],
        "routes": {
            task.name: route_by_task_name(task.name, (), {}, {})
            for task in (platform_tasks.noop, platform_tasks.pickup)
        },
        "check": [f"{error.id}: {error.msg}" for error in check_task_placement(None)],
    }))
    """
)


@pytest.fixture(scope="module")
def imported():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sites.cert.settings", "PYTHONPATH": "."}
    return json_output([sys.executable, "-c", SCRIPT], env)


def test_no_production_app_registers_a_benchmark_task(imported):
    assert imported["bench_modules_in_production"] == []
    assert "celery_tasks.cert.drills.record" in imported["production"]["cert"]  # it did import
    for queue, tasks in imported["production"].items():
        stray = {
            name: module
            for name, module in tasks.items()
            if name.startswith(BENCH_PREFIXES) or module.startswith(BENCH_PREFIXES)
        }
        assert stray == {}, f"the {queue} worker would register benchmark tasks: {stray}"


def test_benchmark_tasks_route_to_cert_and_pass_the_placement_check(imported):
    added = {
        name: module
        for name, module in imported["with_bench"].items()
        if name not in imported["production"]["cert"]
    }
    assert added == {
        "celery_tasks.cert.bench.noop": "bench.systems.platform_tasks",
        "celery_tasks.cert.bench.pickup": "bench.systems.platform_tasks",
    }
    assert set(imported["routes"]) == set(added)
    assert all(route == {"queue": "cert"} for route in imported["routes"].values())
    assert imported["check"] == []
