"""The green_door site's Celery app: consumes only the `green_door` queue, under its settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.green_door.settings")

from platform_core.tasks.celery_factory import create_app

green_door_app = create_app("green_door")
