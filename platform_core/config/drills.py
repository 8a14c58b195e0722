"""Fault drills are opt-in per host (``PLATFORM_DRILLS``).

A drill module is ``celery_tasks/<queue>/drills.py``: tasks that record every execution,
retry on purpose, or kill the pool process running them (``platform_core.tasks.drills``
holds what they do). Operators run them to check a deployment (``manage drill``), the
reliability tests inject faults around them; a production worker has no use for them.
Where ``PLATFORM_DRILLS`` is off (the default with ``DJANGO_ENV=production``) no app
includes them (``platform_core.config.discovery``), so no worker registers them, and a
drill sent to such a worker is refused with ``DRILLS_OFF`` (``platform_core.tasks.consumer``).
"""

DRILLS_MODULE = "drills"

# What the worker's refusal line and ``manage drill`` say.
DRILLS_OFF = (
    "drills are off on this host (PLATFORM_DRILLS); to enable them, set PLATFORM_DRILLS=1 "
    "in the host's environment file (with Ansible: platform_drills: true in the inventory) "
    "and restart celery.service"
)


def is_drill(name: str) -> bool:
    """A drill module or task: ``celery_tasks.<queue>.drills`` or anything under it."""
    parts = name.split(".")
    return len(parts) >= 3 and parts[0] == "celery_tasks" and parts[2] == DRILLS_MODULE
