"""The cert site's Celery app: consumes only the `cert` queue, under its settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.cert.settings")

from platform_core.tasks.celery_factory import create_app

cert_app = create_app("cert")
