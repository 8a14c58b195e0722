"""Finding task modules by convention: every module under ``celery_tasks/<queue>/``.

Placing a file there is all it takes; nobody edits an import list (a manual
CELERY_IMPORTS list is the step that gets forgotten).
"""

import importlib
import pkgutil


def task_modules(queue: str) -> list[str]:
    """Dotted names of every module in the ``celery_tasks.<queue>`` package, recursively."""
    package = importlib.import_module(f"celery_tasks.{queue}")
    return sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
        if not info.ispkg
    )


def all_task_modules() -> list[str]:
    """Every module under ``celery_tasks``, including ones outside any queue package."""
    package = importlib.import_module("celery_tasks")
    return sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix="celery_tasks.")
        if not info.ispkg
    )
