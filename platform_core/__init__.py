"""The machinery shared by every site: Celery app factory, routing, checks, commands."""
