"""The long-running queue's Celery app, under the settings of LONG_RUNNING_SITE."""

import os

from platform_core.config.environment import environment
from platform_core.config.queues import validate_site

_site = validate_site(environment().long_running_site, "LONG_RUNNING_SITE")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"sites.{_site}.settings")

from platform_core.tasks.celery_factory import create_app  # noqa: E402

long_running_app = create_app("long_running")
