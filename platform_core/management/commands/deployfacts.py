"""What this build deploys, as JSON: the provisioning reads it instead of restating it.

Ansible runs it on each host under that host's environment file, so the queue list,
the long-running site and the stop timeouts follow the code and the host's settings.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from platform_core.config.queues import LONG_RUNNING, QUEUES, SITES
from platform_core.config.routing import policy


class Command(BaseCommand):
    help = "Print the sites, queues, long-running site and unit stop timeouts as JSON."
    requires_system_checks = ()

    def handle(self, *args, **options):
        stop_timeouts = {queue: policy(queue).stop_timeout for queue in QUEUES}
        facts = {
            "sites": list(SITES),
            "queues": list(QUEUES),
            "long_running_site": settings.LONG_RUNNING_SITE,
            "stop_timeout_seconds": {
                # One template unit serves every site worker: the longest of theirs.
                "site_worker": max(stop_timeouts[site] for site in SITES),
                LONG_RUNNING: stop_timeouts[LONG_RUNNING],
            },
        }
        self.stdout.write(json.dumps(facts))
