"""The Celery side: building each site's app, the task base class, the worker's consumer,
beat's scheduler, result backend, the example drills. Imports broker and config.
"""
