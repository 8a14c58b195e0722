"""Tasks, one package per queue: ``celery_tasks/<site>/`` and ``celery_tasks/long_running/``.

A module placed in a queue's package is discovered by that queue's app; decorate its
tasks with that app (``from sites.<site>.celery_app import <site>_app``).
"""
