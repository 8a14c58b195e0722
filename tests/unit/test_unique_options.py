"""Unique tasks' options (tasks.unique): a wrong one stops the app from starting (when
its tasks are bound: a worker's start, the first send) with one line naming the task and
what to do; the uniqueness name of a call."""

import pytest
from celery import Celery
from django.conf import settings

from platform_core.errors import BadTaskOption
from platform_core.tasks import unique


def new_app():
    return Celery(
        "unique-options",
        task_cls="platform_core.tasks.task_base:PlatformTask",
        set_as_current=False,
    )


@pytest.fixture
def app():
    app = new_app()
    yield app
    app.close()


def define(app, **options):
    @app.task(name="celery_tasks.cert.example.sync", shared=False, **options)
    def sync(site_id, force=False):
        return site_id

    app.finalize()  # binds the task (as a worker's start or the first send does)
    return app.tasks[sync.name]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"unique_for": 0}, "unique_for=0 is not a number of seconds > 0"),
        ({"unique_for": "10"}, "unique_for='10' is not a number of seconds > 0"),
        ({"unique_for": True}, "unique_for=True is not a number of seconds > 0"),
        ({"unique_for": 10, "unique_until": "done"}, "unique_until='done'; use one of finish"),
        ({"unique_for": 10, "unique_key": "site_id"}, "unique_key must be a function"),
    ],
)
def test_a_wrong_option_is_one_clear_line(app, options, says):
    with pytest.raises(BadTaskOption, match=r"^celery_tasks\.cert\.example\.sync: ") as raised:
        define(app, **options)
    assert says in str(raised.value)


def test_a_window_longer_than_the_delay_limit_is_refused(app):
    limit = settings.PLATFORM_MAX_DELAY_SECONDS
    with pytest.raises(BadTaskOption, match=f"PLATFORM_MAX_DELAY_SECONDS={limit}"):
        define(app, unique_for=limit + 1)
    assert define(new_app(), unique_for=limit).unique_for == limit


def test_the_same_call_has_the_same_name_and_others_do_not(app):
    task = define(app, unique_for=60)
    name = unique.name_for(task, (1,), {"force": True})
    assert name.startswith("celery_tasks.cert.example.sync:")
    assert unique.name_for(task, [1], {"force": True}) == name  # a list is the same call
    assert unique.name_for(task, (2,), {"force": True}) != name
    assert unique.name_for(task, (1,), {}) != name


def test_a_key_function_picks_what_makes_calls_the_same(app):
    task = define(app, unique_for=60, unique_key=lambda site_id, **_: site_id)
    assert unique.name_for(task, (1,), {"force": True}) == unique.name_for(task, (1,), {})
    assert unique.header(task, (1,), {}).endswith("\n60000")
