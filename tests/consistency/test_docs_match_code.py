"""The numbers and names the documentation quotes are the code's: a default changed in
one place and not the other fails here. Every setting read from the environment is a
field of platform_core.config.environment.Environment, so the table is checked against
that one object, and no other module may read a setting from os.environ."""

import ast
import re
from pathlib import Path

from platform_core.config.environment import DEFAULTS, VARIABLES
from platform_core.config.queues import SITES, Limits, validate_site
from platform_core.management.commands import runplatform
from platform_core.processes.cli import settings_for

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"

# Read from the environment on purpose outside the settings object:
SECRETS = {  # read when used, never kept (config.env.read_secret)
    "FLOWER_BASIC_AUTH",
    "FLOWER_BASIC_AUTH_FILE",
    "PLATFORM_METRICS_AUTH",
    "PLATFORM_METRICS_AUTH_FILE",
    "REDIS_PASSWORD",
    "REDIS_PASSWORD_FILE",
    "PLATFORM_METRICS_REDIS_PASSWORD_FILE",
}
# Which Django settings module a process runs under: chosen before any settings exist.
BEFORE_SETTINGS = {"DJANGO_SETTINGS_MODULE"}
INTERNAL = {"PLATFORM_ENTRY"}  # set by the CLI for the processes it starts
# Documented with a default in words (depends on DJANGO_ENV, or unset means "none").
IN_WORDS = {
    "USE_CELERY",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "PLATFORM_VAR_DIR",
    "PLATFORM_TASK_EVENTS_OFF",
    "PLATFORM_DRILLS",
    "PLATFORM_TASK_LOG_LINES",
    "REDIS_USERNAME",
    "PLATFORM_METRICS_REDIS_USERNAME",
    "PLATFORM_REDIS_CA_FILE",
}
# Defaults derived from another setting: the documented value names where it comes from.
DERIVED = {
    "CELERY_BROKER_URL": "REDIS_URL",
    "CELERY_RESULT_BACKEND": "REDIS_URL",
    "REPORTS_DIR": "var/reports",
    "DJANGO_TEST_DATABASE": "var/test-db.sqlite3",
    "DATABASE_URL": "sqlite:///var/db.sqlite3",
}
# The modules allowed to read os.environ, and why.
ENVIRONMENT_READERS = {
    "platform_core/config/environment.py": "the settings object",
    "platform_core/config/env.py": "secrets, read when used",
}


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


def environ_reads(path: Path) -> list[tuple[int, str]]:
    """(line, what) for every read of os.environ / os.getenv in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            reads_environ = node.func.attr in ("get", "pop") and _is_environ(target)
            if reads_environ or (node.func.attr == "getenv" and _is_name(target, "os")):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            if isinstance(node.ctx, ast.Load):
                found.append((node.lineno, ast.unparse(node)))
    return found


def _is_name(node, name) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_environ(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def test_only_the_settings_object_reads_settings_from_the_environment():
    offenders = []
    for folder in ("platform_core", "sites", "celery_tasks", "records"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative in ENVIRONMENT_READERS:
                continue
            for line, call in environ_reads(path):
                if not any(name in call for name in SECRETS | BEFORE_SETTINGS | INTERNAL):
                    offenders.append(f"{relative}:{line}: {call}")
    assert not offenders, "read it from platform_core.config.environment: " + "; ".join(offenders)


def test_every_variable_is_documented_and_nothing_else():
    documented = set(documented_defaults())
    expected = set(VARIABLES) | SECRETS | BEFORE_SETTINGS
    assert documented - expected == set(), "documented, but no setting reads it"
    assert expected - documented == set(), "add to docs/configuration.md"


def test_every_documented_default_is_the_codes():
    documented = documented_defaults()
    words = {False: "off", True: "on"}
    for name, spec in VARIABLES.items():
        if name in IN_WORDS:
            continue
        default = getattr(DEFAULTS, spec.name)
        # Only a boolean is shown in words (0 == False in a dict lookup).
        shown = words[default] if isinstance(default, bool) else str(default)
        expected = DERIVED.get(name, shown)
        assert documented[name] == expected, name
    assert documented["DJANGO_SETTINGS_MODULE"] == settings_for(["manage", "migrate"])


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
        f"Flower is at <http://{DEFAULTS.flower_address}:{DEFAULTS.flower_port}>",
        ", ".join(f"`{site}`" for site in SITES),
    }
    assert {claim for claim in claims if claim not in text} == set()
