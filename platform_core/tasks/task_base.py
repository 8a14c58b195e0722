"""The base class of every platform task."""

import logging

from celery.contrib.django.task import DjangoTask
from django.conf import settings

from platform_core.broker.rejections import count_rejection, report_rejection
from platform_core.errors import Rejection, TooManyAttempts, WrongArguments
from platform_core.tasks.attempts import count_redelivery

logger = logging.getLogger(__name__)


class PlatformTask(DjangoTask):
    # Expected failures are logged as one line, without a traceback.
    throws = (WrongArguments, TooManyAttempts)

    def __call__(self, *args, **kwargs):
        if self.request.delivery_info and self.request.delivery_info.get("redelivered"):
            self._refuse_if_poison()
        try:
            # Celery's signature stub for this task: binding checks arity/names only.
            # fence: celery-task-header (platform_core/config/fences.py)
            self.__header__(*args, **kwargs)
        except TypeError as exc:
            detail = f"wrong arguments args={args!r:.200} kwargs={kwargs!r:.200}: {exc}"
            if self.request.is_eager:
                logger.error("Rejected %s: %s", self.name, detail)
            else:
                report_rejection(
                    self.app.conf.task_default_queue,
                    Rejection.WRONG_ARGUMENTS,
                    detail,
                    task=self.name,
                    id=self.request.id,
                )
            raise WrongArguments(str(exc)) from None
        return super().__call__(*args, **kwargs)

    def _refuse_if_poison(self) -> None:
        attempts = count_redelivery(self.app.conf.task_default_queue, self.request.id)
        limit = settings.PLATFORM_MAX_ATTEMPTS
        if attempts > limit:
            logger.error(
                "Gave up on %s[%s]: delivered %d times without completing (its worker died "
                "each time); recorded as failed (PLATFORM_MAX_ATTEMPTS=%d)",
                self.name,
                self.request.id,
                attempts,
                limit,
            )
            # The worker's own queue, not the message's routing key: the sender
            # chooses that, and the metrics label their series by it.
            count_rejection(self.app.conf.task_default_queue, Rejection.TOO_MANY_ATTEMPTS)
            raise TooManyAttempts(f"gave up after {attempts - 1} deliveries that never completed")

    @property
    def is_eager(self) -> bool:
        return bool(self.request.is_eager)
