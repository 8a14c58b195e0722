"""System checks (``manage.py check``): every task sits where its queue's app finds it."""

import importlib

from django.conf import settings
from django.core.checks import Error, register

from platform_core.config.discovery import all_task_modules
from platform_core.config.queues import queue_for_task_name
from platform_core.tasks.registry import platform_apps


def _fix_for(task_name: str, module: str, app_queue: str) -> Error:
    owner = queue_for_task_name(task_name)
    if owner and owner != app_queue:
        return Error(
            f"Task {task_name} lives in celery_tasks/{owner}/ but is decorated with "
            f"@{app_queue}_app.task, so the {owner} worker will not know it.",
            hint=f"Decorate it with @{owner}_app.task "
            f"(from sites.{owner}.celery_app import {owner}_app), or move it to "
            f"celery_tasks/{app_queue}/.",
            obj=module,
            id="platform_core.E001",
        )
    return Error(
        f"Task {task_name} (module {module}) is registered on {app_queue}_app but its name "
        f"does not start with celery_tasks.{app_queue}., so the {app_queue} worker will not "
        "discover it and send_task by name will not route it.",
        hint=f"Move the module into celery_tasks/{app_queue}/ and do not pass name= to "
        "the task decorator (the module path is the task's name).",
        obj=module,
        id="platform_core.E002",
    )


@register("celery")
def check_task_placement(app_configs, **kwargs):
    errors = []
    # Not the drill modules where drills are off: importing one registers its tasks on
    # its app, and a worker command runs these checks in the process that becomes the
    # worker (platform_core.config.drills).
    for module in all_task_modules(drills=settings.PLATFORM_DRILLS):
        try:
            importlib.import_module(module)
        except Exception as exc:
            errors.append(
                Error(
                    f"Task module {module} cannot be imported: {type(exc).__name__}: {exc}",
                    hint="Workers would fail to start; fix the import error.",
                    obj=module,
                    id="platform_core.E003",
                )
            )
    reported = set()
    for queue, app in platform_apps().items():
        for name, task in app.tasks.items():
            if name.startswith("celery.") or name.startswith(f"celery_tasks.{queue}."):
                continue
            if name not in reported:
                reported.add(name)
                errors.append(_fix_for(name, task.__module__, queue))
    return errors
