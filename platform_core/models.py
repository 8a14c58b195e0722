"""Rate limits set at runtime, as the admin lists and edits them (broker.rate_limits).

The workers read the limits from Redis (their queue's room); a row here is written there
in the same transaction, so the two cannot disagree: if Redis refuses (unreachable, or
this process's Redis user may not write that queue's room, broker.acl), nothing is saved.
"""

from django.core.exceptions import ValidationError
from django.db import models, transaction

from platform_core.broker import clients, rate_limits
from platform_core.config.rates import Rate
from platform_core.errors import BadRate


class RateLimit(models.Model):
    name = models.CharField(
        max_length=200,
        unique=True,
        help_text="A task (celery_tasks.<queue>.<module>.<function>), or a queue: all its "
        "tasks that have no limit of their own.",
    )
    rate = models.CharField(
        max_length=20, help_text="N/s, N/m or N/h: that many across every worker and host."
    )

    class Meta:
        verbose_name = "global rate limit"
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name}: {self.rate}"

    def save(self, *args, **kwargs):
        self.clean()
        with transaction.atomic():
            super().save(*args, **kwargs)
            rate_limits.store(clients.shared(), self.name, Rate.parse(self.rate))

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            deleted = super().delete(*args, **kwargs)
            rate_limits.store(clients.shared(), self.name, None)
        return deleted

    def clean(self):
        try:
            rate_limits.target_of(self.name)
            self.rate = str(Rate.parse(self.rate, self.name))
        except BadRate as exc:
            raise ValidationError(str(exc)) from None
