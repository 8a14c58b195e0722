"""One entry point for the single-file app (Shiv) and for manage.py.

platform.pyz manage <django command …>   e.g. `manage migrate`, `manage runworker cert`
platform.pyz celery <celery args …>      without -A: the long-running site's app
platform.pyz watchfiles <args …>          (used by --reload)
"""

import os
import sys

from platform_core.config.environment import environment
from platform_core.config.queues import (
    DEFAULT_LONG_RUNNING_SITE,
    LONG_RUNNING,
    QUEUES,
    SITES,
    WORKER_COMMANDS,
    app_path,
    worker_settings_module,
)


def with_worker_alias_expanded(argv: list[str]) -> list[str]:
    """`run<site>worker …` is `runworker <site> …`: no command module per site."""
    queue = {command: queue for queue, command in WORKER_COMMANDS.items()}.get(
        argv[1] if len(argv) > 1 else ""
    )
    return [argv[0], "runworker", queue, *argv[2:]] if queue else argv


def settings_for(argv: list[str]) -> str:
    """The settings a command runs under: a worker's own site, so it starts in-process."""
    command = argv[1] if len(argv) > 1 else ""
    queue = argv[2] if command == "runworker" and len(argv) > 2 else None
    site = environment().long_running_site
    if queue in QUEUES and (queue != LONG_RUNNING or site in SITES):
        return worker_settings_module(queue, site)
    # Whose validation names a bad LONG_RUNNING_SITE.
    return f"sites.{DEFAULT_LONG_RUNNING_SITE}.settings"


def with_default_app(args: list[str]) -> list[str]:
    """`celery inspect …` needs an app; any site's reaches the whole broker. Use the
    long-running site's (the one that always runs), so no wrapper names a site."""
    if any(arg in ("-A", "--app") or arg.startswith("--app=") for arg in args):
        return args
    site = environment().long_running_site
    site = site if site in SITES else DEFAULT_LONG_RUNNING_SITE
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"sites.{site}.settings")
    return ["-A", app_path(site), *args]


def run_manage(argv: list[str]) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    argv = with_worker_alias_expanded(argv)
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_for(argv))
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        # A setting to fix, not a bug: say which one, without a traceback.
        sys.exit(f"Configuration error: {exc}")


def main() -> None:
    # Processes we exec later (workers, reloader) must go through this same archive.
    os.environ.setdefault("PLATFORM_ENTRY", os.path.abspath(sys.argv[0]))
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command == "manage":
        run_manage(["manage", *args])
    elif command == "celery":
        from celery.__main__ import main as celery_main
        from django.core.exceptions import ImproperlyConfigured

        try:
            sys.argv = ["celery", *with_default_app(args)]
        except ImproperlyConfigured as exc:
            sys.exit(f"Configuration error: {exc}")
        celery_main()
    elif command == "watchfiles":
        from watchfiles.cli import cli

        cli(*args)
    else:
        sys.exit(__doc__)
