"""Finding task modules by convention: every module under ``celery_tasks/<queue>/``.

Placing a file there is all it takes; nobody edits an import list (a manual
CELERY_IMPORTS list is the step that gets forgotten). The one exception is a queue's
fault drills (``drills.py``), found only where drills are on (platform_core.config.drills).
"""

import importlib
import pkgutil

from platform_core.config.drills import is_drill


def _modules(package_name: str, drills: bool) -> list[str]:
    package = importlib.import_module(package_name)
    return sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
        if not info.ispkg and (drills or not is_drill(info.name))
    )


def task_modules(queue: str, *, drills: bool) -> list[str]:
    """Dotted names of every module in the ``celery_tasks.<queue>`` package, recursively;
    its drill modules only with ``drills``."""
    return _modules(f"celery_tasks.{queue}", drills)


def all_task_modules(*, drills: bool) -> list[str]:
    """Every module under ``celery_tasks``, including ones outside any queue package;
    the drill modules only with ``drills``."""
    return _modules("celery_tasks", drills)
