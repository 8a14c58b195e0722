"""The api site's Celery app: consumes only the `api` queue, under its settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.api.settings")

from platform_core.tasks.celery_factory import create_app

api_app = create_app("api")
