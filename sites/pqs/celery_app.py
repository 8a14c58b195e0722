"""The pqs site's Celery app: consumes only the `pqs` queue, under its settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.pqs.settings")

from platform_core.tasks.celery_factory import create_app

pqs_app = create_app("pqs")
