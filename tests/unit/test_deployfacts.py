import json
from io import StringIO

from django.core.management import call_command
from django.test import override_settings

from platform_core.config.queues import QUEUES, SITES, STOP_GRACE_SECONDS


def deployfacts() -> dict:
    out = StringIO()
    call_command("deployfacts", stdout=out)
    return json.loads(out.getvalue())


def test_the_facts_are_the_codes():
    facts = deployfacts()
    assert facts["sites"] == list(SITES)
    assert facts["queues"] == list(QUEUES)
    assert facts["long_running_site"] == "cert"


@override_settings(PLATFORM_SITE_TASK_TIME_LIMIT=600, PLATFORM_LONG_TASK_TIME_LIMIT=9000)
def test_stop_timeouts_follow_the_hosts_time_limits():
    assert deployfacts()["stop_timeout_seconds"] == {
        "site_worker": 600 + STOP_GRACE_SECONDS,
        "long_running": 9000 + STOP_GRACE_SECONDS,
    }
