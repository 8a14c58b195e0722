"""The numbers and names the documentation quotes are the code's: a default changed in
one place and not the other fails here."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from platform_core.config.queues import SITES, Limits, validate_site
from platform_core.management.commands import runflower, runplatform
from platform_core.observe import metrics
from platform_core.processes.cli import settings_for

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"

# Variables the code reads that are not for operators to set.
INTERNAL = {"PLATFORM_ENTRY"}  # set by the CLI for the processes it starts
# Documented with a default in words (depends on DJANGO_ENV, or unset means "none").
IN_WORDS = {
    "USE_CELERY",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "PLATFORM_VAR_DIR",
    "FLOWER_BASIC_AUTH",
    "FLOWER_BASIC_AUTH_FILE",
    "PLATFORM_METRICS_AUTH",
    "PLATFORM_METRICS_AUTH_FILE",
    "PLATFORM_TASK_EVENTS_OFF",
    "PLATFORM_DRILLS",
}
# What each variable sets, where the setting's name is not the variable's.
SETTING_OF = {
    "PLATFORM_SEND_SENT_EVENT": "CELERY_TASK_SEND_SENT_EVENT",
    "DJANGO_LOG_LEVEL": "LOG_LEVEL",
    "DJANGO_TEST_DATABASE": "TEST_DATABASE",
}
NOT_SETTINGS = {
    "FLOWER_ADDRESS": runflower.DEFAULT_ADDRESS,
    "FLOWER_PORT": runflower.DEFAULT_FLOWER_PORT,
    "FLOWER_MAX_TASKS": runflower.DEFAULT_MAX_TASKS,
    "PLATFORM_METRICS_ADDRESS": runflower.DEFAULT_ADDRESS,
    "PLATFORM_METRICS_PORT": metrics.DEFAULT_METRICS_PORT,
}

ENV_READERS = {"env_int", "env_bool", "env_list", "env_required", "read_secret", "get", "getenv"}


def variables_the_code_reads() -> set[str]:
    found = set()
    for folder in ("platform_core", "sites", "celery_tasks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    first = node.args[0]
                    if name == "get" and not _is_environ(func):
                        continue
                    if name in ENV_READERS and isinstance(first, ast.Constant):
                        found.add(first.value)
                elif isinstance(node, ast.Subscript) and _is_environ(node):
                    if isinstance(node.slice, ast.Constant):
                        found.add(node.slice.value)
    return {name for name in found if isinstance(name, str) and name.isupper()}


def _is_environ(node) -> bool:
    value = getattr(node, "value", None)
    return isinstance(value, ast.Attribute) and value.attr == "environ"


def documented_defaults() -> dict[str, str | None]:
    """Each variable of the configuration table → its documented default literal (the
    backquoted value in the default column, None when given in words)."""
    rows = {}
    for line in CONFIGURATION.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        values = re.findall(r"`([^`]*)`", cells[1])
        for index, name in enumerate(names):
            if len(values) == 1:  # one default for all the row's variables
                rows[name] = values[0]
            else:
                rows[name] = values[index] if len(values) == len(names) else None
    return rows


def code_defaults(names) -> dict[str, str]:
    """The settings' values in a process with none of the variables set."""
    script = (
        "import json, sys, django\n"
        "from django.conf import settings\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps({n: str(getattr(settings, a)) for n, a in names.items()"
        " if hasattr(settings, a)}))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_SETTINGS_MODULE": "sites.cert.settings",
    }
    attributes = {name: SETTING_OF.get(name, name) for name in names}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(attributes)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = json.loads(out)
    values["DJANGO_SETTINGS_MODULE"] = settings_for(["manage", "migrate"])
    values.update({name: str(value) for name, value in NOT_SETTINGS.items()})
    # Paths under the checkout are documented relative to it.
    return {name: value.replace(f"{ROOT}/", "") for name, value in values.items()}


def test_every_variable_the_code_reads_is_documented():
    missing = variables_the_code_reads() - INTERNAL - set(documented_defaults())
    assert not missing, f"add to docs/configuration.md: {', '.join(sorted(missing))}"


def test_every_documented_default_is_the_codes():
    documented = documented_defaults()
    literal = {name: value for name, value in documented.items() if name not in IN_WORDS}
    unreadable = [name for name, value in literal.items() if value is None]
    assert not unreadable, f"no default literal (or add to IN_WORDS): {unreadable}"
    code = code_defaults(literal)
    words = {"off": "False", "on": "True"}
    expected = {
        # A default that names another variable is that variable's value.
        name: code.get(value, words.get(value, value))
        for name, value in literal.items()
    }
    assert {name: code.get(name) for name in literal} == expected


def test_the_quoted_error_is_the_one_the_code_gives():
    try:
        validate_site("kitchen", "LONG_RUNNING_SITE")
    except Exception as exc:  # ImproperlyConfigured
        message = str(exc)
    text = " ".join(CONFIGURATION.read_text().split())
    assert message in text


def test_the_readme_quotes_the_codes_numbers():
    from django_celery_beat import schedulers  # needs the app registry

    text = " ".join(README.read_text().split())
    claims = {
        f"site limit ({Limits.site_time_limit // 60} min)",
        f"running tasks get {runplatform.STOP_GRACE_SECONDS} s to finish",
        # django-celery-beat's scheduler re-reads changed jobs this often.
        f"picks the change up within {schedulers.DEFAULT_MAX_INTERVAL} s",
        f"Flower is at <http://127.0.0.1:{runflower.DEFAULT_FLOWER_PORT}>",
        ", ".join(f"`{site}`" for site in SITES),
    }
    assert {claim for claim in claims if claim not in text} == set()
