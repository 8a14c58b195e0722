"""The base class of every platform task."""

import logging

from celery.contrib.django.task import DjangoTask

from platform_core.rejections import count_rejection

logger = logging.getLogger(__name__)


class WrongArguments(TypeError):
    """A message whose arguments do not fit the task's signature."""


class PlatformTask(DjangoTask):
    # Expected failures are logged as one line, without a traceback.
    throws = (WrongArguments,)

    def __call__(self, *args, **kwargs):
        try:
            # Celery's signature stub for this task: binding checks arity/names only.
            self.__header__(*args, **kwargs)
        except TypeError as exc:
            logger.error(
                "Rejected %s[%s]: wrong arguments args=%r kwargs=%r: %s",
                self.name,
                self.request.id,
                args,
                kwargs,
                exc,
            )
            if not self.request.is_eager:
                count_rejection(
                    self.request.delivery_info.get("routing_key") or "?", "wrong-arguments"
                )
            raise WrongArguments(str(exc)) from None
        return super().__call__(*args, **kwargs)

    @property
    def is_eager(self) -> bool:
        return bool(self.request.is_eager)
