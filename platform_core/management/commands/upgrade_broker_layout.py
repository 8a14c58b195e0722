"""``manage.py upgrade_broker_layout``: move a previous version's keys into the rooms."""

import redis
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import clients
from platform_core.broker.layout_upgrade import upgrade
from platform_core.config.queues import QUEUES


class Command(BaseCommand):
    help = (
        "Move what a version before per-queue rooms left in Redis into the rooms "
        "(platform_core.broker.layout_upgrade); run as the admin Redis user "
        "(REDIS_USERNAME=admin) once every worker runs this version. Idempotent."
    )

    def handle(self, *args, **options):
        client = clients.connect()
        try:
            self.stdout.write(str(upgrade(client, QUEUES)))
        except redis.exceptions.NoPermissionError as exc:
            raise CommandError(
                f"Redis refused ({exc}): run it as the admin user (REDIS_USERNAME=admin, "
                "REDIS_PASSWORD_FILE=<its password file>)"
            ) from None
        finally:
            client.close()
