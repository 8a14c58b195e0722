"""`manage.py periodic` creates and changes jobs; bad input gets a clear error."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask, PeriodicTasks

pytestmark = pytest.mark.django_db

TASK = "celery_tasks.pqs.submissions.purge_stale_drafts"


def test_set_creates_then_updates_and_tells_beat():
    call_command("periodic", "set", "purge", "--task", TASK, "--cron", "0 4 * * *")
    changed = PeriodicTasks.last_change()
    call_command(
        "periodic",
        "set",
        "purge",
        "--task",
        TASK,
        "--every",
        "60",
        "--kwargs",
        '{"older_than_days": 7}',
    )
    job = PeriodicTask.objects.get(name="purge")
    assert (job.interval.every, job.crontab, job.kwargs) == (60, None, '{"older_than_days": 7}')
    assert PeriodicTasks.last_change() >= changed
    call_command("periodic", "disable", "purge")
    assert not PeriodicTask.objects.get(name="purge").enabled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "celery_tasks.pqs.nope.x", "--every", "5"], "no task"),
        (["--task", "os.system", "--every", "5"], "not a platform task name"),
        (["--task", TASK, "--cron", "0 4 *"], "five fields"),
        (["--task", TASK, "--every", "5", "--args", "{not json"], "--args is not JSON"),
        (["--task", TASK, "--every", "0"], "at least 1 second"),
    ],
)
def test_bad_input_is_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("periodic", "set", "job", *args)
    assert not PeriodicTask.objects.filter(name="job").exists()


def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
