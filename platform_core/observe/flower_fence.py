"""Flower's own /metrics behind Flower's credentials.

fence: flower-metrics-auth (platform_core/config/fences.py, which holds the verified
Flower version).
Replaces: the ``/metrics`` route of ``flower.urls.handlers`` (handler
``flower.views.monitor.Metrics``).
Why: Flower checks basic auth only in handlers marked ``tornado.web.authenticated``
and its Metrics handler is not, so ``/metrics`` answers 200 without credentials while
every page beside it answers 401. Flower has no option for it.
How: the same handler, marked authenticated, put in the list before Flower builds its
application (Flower reads the list when it starts). tests/unit/test_upstream_fence.py
fails when the installed Flower is not the verified one.
"""

from platform_core.config.fences import VERIFIED


def require_credentials_for_metrics() -> None:
    import tornado.web
    from flower import urls
    from flower.views import monitor

    class AuthenticatedMetrics(monitor.Metrics):
        platform_fenced = True

        @tornado.web.authenticated
        async def get(self):
            await super().get()

    for index, handler in enumerate(urls.handlers):
        if not (isinstance(handler, tuple) and handler[0] == r"/metrics"):
            continue
        if getattr(handler[1], "platform_fenced", False):
            return  # already in place (a second call in this process)
        if handler[1] is monitor.Metrics:
            urls.handlers[index] = (r"/metrics", AuthenticatedMetrics)
            return
    raise RuntimeError(
        "Flower's /metrics route is not where platform_core/observe/flower_fence.py expects it "
        f"(fence flower-metrics-auth, verified with Flower {VERIFIED['flower']}); re-verify "
        "it for this Flower version"
    )
