"""The base class of every platform task."""

import logging
from types import FunctionType

from celery.contrib.django.task import DjangoTask
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.conf import settings

from platform_core.broker import rate_limits
from platform_core.broker.rejections import count_rejection, report_rejection
from platform_core.broker.unique import UNIQUE_HEADER, take_holder
from platform_core.config.rates import Rate
from platform_core.errors import Rejection, TooManyAttempts, WrongArguments
from platform_core.tasks import cancellation, unique
from platform_core.tasks.attempts import count_redelivery

logger = logging.getLogger(__name__)


class PlatformTask(DjangoTask):
    # Expected failures are logged as one line, without a traceback.
    throws = (WrongArguments, TooManyAttempts)
    # Unique tasks (tasks.unique): @app.task(unique_for=SECONDS[, unique_key=f]
    # [, unique_until="window"]).
    unique_for = None
    unique_key = None
    unique_until = "finish"
    # A rate limit across every worker and host (broker.rate_limits): "20/s", "100/m", …
    # Changed at runtime with manage.py ratelimit; Celery's own rate_limit is per worker.
    global_rate_limit = None

    @classmethod
    def on_bound(cls, app):
        super().on_bound(app)
        key = cls.__dict__.get("unique_key")
        if isinstance(key, FunctionType):  # a plain function: not to become a method
            cls.unique_key = staticmethod(key)
        unique.check_options(cls)
        if cls.global_rate_limit is not None:
            rate = Rate.parse(cls.global_rate_limit, f"{cls.name}: global_rate_limit")
            rate_limits.DEFAULTS.setdefault(app.conf.task_default_queue, {})[cls.name] = rate

    def apply_async(
        self,
        args=None,
        kwargs=None,
        task_id=None,
        producer=None,
        link=None,
        link_error=None,
        shadow=None,
        **options,
    ):
        if self.unique_for is None or self.app.conf.task_always_eager:
            return super().apply_async(
                args, kwargs, task_id, producer, link, link_error, shadow, **options
            )
        headers = {**(options.pop("headers", None) or {})}
        headers[UNIQUE_HEADER] = unique.header(self, args, kwargs)
        take_holder()  # nothing left from an earlier send of this thread
        sent = super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, headers=headers, **options
        )
        holder = take_holder()
        return sent if holder in (None, sent.id) else self.AsyncResult(holder)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        super().after_return(status, retval, task_id, args, kwargs, einfo)
        unique.release_after(self, status, task_id)

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
        try:
            return super().__call__(*args, **kwargs)
        except SoftTimeLimitExceeded:
            if not self.request.is_eager and cancellation.is_cancelled(
                self.app.conf.task_default_queue, self.request.id
            ):
                # Cancelled (tasks.cancellation): its worker marked it REVOKED and
                # acknowledged it; no FAILURE is stored over that.
                raise Ignore() from None
            raise

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
