"""Queue policies: the numbers that keep long tasks single and short tasks safe."""

import pytest

from platform_core.broker.delays import check_delay
from platform_core.config.environment import DEFAULTS
from platform_core.config.queues import QUEUES, Limits, policy_for, queue_for_task_name
from platform_core.config.routing import route_by_task_name
from platform_core.errors import DelayTooLong
from platform_core.tasks.celery_factory import queue_settings


def test_only_runaway_tasks_are_limited_and_long_running_has_the_longer_limit():
    site, long = policy_for("cert", Limits()), policy_for("long_running", Limits())
    assert long.hard_time_limit > site.hard_time_limit
    for policy in (site, long):
        assert policy.soft_time_limit < policy.hard_time_limit


def test_the_legacy_indexes_keep_the_windows_the_previous_version_used():
    """Upgrade path: kombu's old indexes are swept with the windows they were filled
    under (site: 300 s limit + 60 s countdown + 60 s margin; long_running: 7200 + 600
    + 60), never shorter, so a task an old worker still runs is not handed out."""
    site = policy_for("api", Limits()).transport_options()
    long = policy_for("long_running", Limits()).transport_options()
    assert (site["unacked_index_key"], site["visibility_timeout"]) == ("unacked_index", 420)
    assert (long["unacked_index_key"], long["visibility_timeout"]) == (
        "unacked_long_running_index",
        7860,
    )
    # Not derived from today's limits: changing them does not move the old windows.
    short = policy_for("api", Limits(site_time_limit=5)).transport_options()
    assert short["visibility_timeout"] == 420


def test_each_app_gets_its_queue_and_its_policy():
    for queue in QUEUES:
        conf = queue_settings(queue)
        assert conf["task_default_queue"] == queue
        assert conf["task_time_limit"] > conf["task_soft_time_limit"]
        assert (
            conf["result_backend_transport_options"]["visibility_timeout"]
            == conf["broker_transport_options"]["visibility_timeout"]
        )


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("celery_tasks.pqs.submissions.score_submission", "pqs"),
        ("celery_tasks.long_running.reports.build_certificate_report", "long_running"),
        ("celery_tasks.green_door.sub.module.task", "green_door"),
        ("celery_tasks.kitchen.x.y", None),
        ("celery.backend_cleanup", None),
        ("pqs.score", None),
    ],
)
def test_the_name_alone_decides_the_queue(name, queue):
    assert queue_for_task_name(name) == queue
    route = route_by_task_name(name, (), {}, {})
    assert route == ({"queue": queue} if queue else None)


def test_delays_of_any_length_up_to_the_sanity_limit_are_accepted():
    from datetime import UTC, datetime, timedelta

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    check_delay("celery_tasks.cert.x.y", 3600, None, DEFAULTS.max_delay_seconds)
    check_delay("celery_tasks.cert.x.y", None, tomorrow, DEFAULTS.max_delay_seconds)
    check_delay("celery_tasks.cert.x.y", None, tomorrow.isoformat(), DEFAULTS.max_delay_seconds)
    with pytest.raises(DelayTooLong, match=r"limit of 2592000 s \(30 days, PLATFORM_MAX_DELAY"):
        check_delay("celery_tasks.cert.x.y", 31 * 86400, None, DEFAULTS.max_delay_seconds)
    with pytest.raises(DelayTooLong, match="Nothing was sent"):
        check_delay("celery_tasks.cert.x.y", None, tomorrow + timedelta(days=30), 30 * 86400)


def test_task_events_are_on_for_every_queue_unless_switched_off(settings):
    assert all(queue_settings(queue)["worker_send_task_events"] for queue in QUEUES)
    settings.PLATFORM_TASK_EVENTS_OFF = ["api"]
    assert not queue_settings("api")["worker_send_task_events"]
    assert queue_settings("cert")["worker_send_task_events"]


def test_an_unknown_queue_in_task_events_off_is_named():
    from django.core.exceptions import ImproperlyConfigured

    from platform_core.config.queues import validate_queues

    with pytest.raises(ImproperlyConfigured, match="'kitchen', not a queue"):
        validate_queues(["api", "kitchen"], "PLATFORM_TASK_EVENTS_OFF")
