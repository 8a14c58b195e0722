"""Fault drills on the long_running queue (see platform_core.tasks.drills).

Loaded only where PLATFORM_DRILLS is on (platform_core.config.drills).
"""

from platform_core.tasks.drills import record_execution
from sites.long_running.celery_app import long_running_app


@long_running_app.task(bind=True)
def record(self, token: str, seconds: float = 0) -> int:
    return record_execution(token, self.request.id, seconds)
