"""The files of a new site, written by ``manage.py startsite NAME``.

Nothing else names a site: queues, worker commands (run<name>worker), Ansible's
default queue list, Molecule's checks and the tests all derive from the folders
sites/<name>/ and celery_tasks/<name>/ (platform_core.config.queues.SITES).
"""

import keyword
import re
from pathlib import Path

from platform_core.config.queues import LONG_RUNNING, QUEUES, worker_command
from platform_core.errors import BadSiteName

NAME = re.compile(r"^[a-z][a-z0-9_]{1,19}$")  # generated lines stay within 100 characters

FILES = {
    "sites/{name}/__init__.py": "",
    "sites/{name}/settings.py": '''\
"""Settings of the {name} site."""

from sites.base.settings import *

SITE_NAME = "{name}"
ROOT_URLCONF = "sites.{name}.urls"
WSGI_APPLICATION = "sites.{name}.wsgi.application"
''',
    "sites/{name}/celery_app.py": '''\
"""The {name} site's Celery app: consumes only the `{name}` queue, under its settings."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.{name}.settings")

from platform_core.tasks.celery_factory import create_app

{name}_app = create_app("{name}")
''',
    "sites/{name}/urls.py": '''\
"""URLs of the {name} site."""

from sites.base.urls import urlpatterns as base_urlpatterns

urlpatterns = [*base_urlpatterns]
''',
    "sites/{name}/wsgi.py": '''\
"""WSGI entry of the {name} site."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sites.{name}.settings")
application = get_wsgi_application()
''',
    "celery_tasks/{name}/__init__.py": '''\
"""Tasks of the `{name}` queue; each module here is discovered automatically."""
''',
    "celery_tasks/{name}/probe.py": '''\
"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.{name}.celery_app import {name}_app


@{name}_app.task
def whoami():
    return describe_worker()
''',
}


def check_name(name: str, existing=QUEUES) -> None:
    if not NAME.match(name) or keyword.iskeyword(name):
        raise BadSiteName(
            f"{name!r} cannot name a site: use 2-20 lower-case letters, digits and "
            "underscores, starting with a letter (it becomes a Python package and a queue)"
        )
    if name in (*existing, "base", LONG_RUNNING):
        raise BadSiteName(f"{name!r} is already taken (sites and queues: {', '.join(existing)})")
    taken = {worker_command(queue): queue for queue in existing}
    if worker_command(name) in taken:
        raise BadSiteName(
            f"{name!r} would start with {worker_command(name)}, the command of "
            f"{taken[worker_command(name)]!r}; choose another name"
        )


def write_site(root: Path, name: str, existing=QUEUES) -> list[Path]:
    """Write the new site's files under ``root``; refuse to touch anything there."""
    check_name(name, existing)
    targets = {
        root / path.format(name=name): text.format(name=name) for path, text in FILES.items()
    }
    present = [path for path in targets if path.exists()]
    if present:
        raise BadSiteName(f"{present[0]} already exists; nothing was written")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(targets)
