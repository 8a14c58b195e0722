"""The platform's apps get the lazy result backend through Celery's own hook.

Fence celery-result-backend (platform_core/config/fences.py): the app loader's
``override_backends``, consulted by ``celery.app.backends.by_name``, instead of Celery's
process-wide ``BACKEND_ALIASES``.
"""

import pytest
from celery import Celery, _state
from celery.app import backends
from celery.backends.redis import RedisBackend
from celery.loaders.base import BaseLoader

from platform_core.tasks.celery_factory import create_app
from platform_core.tasks.checks import platform_apps
from platform_core.tasks.results import LazyRedisBackend

STOCK_ALIASES = {"redis": "celery.backends.redis:RedisBackend"}


@pytest.mark.parametrize("queue", list(platform_apps()))
def test_each_platform_app_uses_the_lazy_backend(queue):
    app = platform_apps()[queue]
    assert app.conf.result_backend.startswith("redis://")
    assert type(app.backend) is LazyRedisBackend


def test_a_rediss_url_uses_it_too(settings):
    previous = _state.get_current_app()
    settings.CELERY_RESULT_BACKEND = "rediss://127.0.0.1:1/0?ssl_cert_reqs=required"
    app = create_app("cert")
    try:
        assert type(app.backend) is LazyRedisBackend
    finally:
        app.close()
        previous.set_current()


def test_celerys_global_aliases_and_other_apps_are_untouched():
    for app in platform_apps().values():
        assert type(app.backend) is LazyRedisBackend
    assert backends.BACKEND_ALIASES["redis"] == STOCK_ALIASES["redis"]
    assert "rediss" not in backends.BACKEND_ALIASES or (
        backends.BACKEND_ALIASES["rediss"] != "platform_core.tasks.results:LazyRedisBackend"
    )
    assert BaseLoader.override_backends == {}  # the class-level dict every loader shares
    plain = Celery("outsider", backend="redis://127.0.0.1:1/0", set_as_current=False)
    assert type(plain.backend) is RedisBackend
