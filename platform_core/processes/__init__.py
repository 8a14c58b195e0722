"""Starting processes: the single-file entry point, the launcher that execs Celery, the
development fleet. The top layer beside the management commands.
"""
