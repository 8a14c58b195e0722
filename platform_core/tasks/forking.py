"""Pool children keep sharing the parent's memory pages.

A prefork child is a copy-on-write fork of its worker's parent, which has already
imported Django, Celery and every task module. CPython's cyclic garbage collector
writes to the header of every object it examines, so the first collection in a child
copies most of the parent's heap page by page (38-50 MB private per child measured
before this). ``gc.freeze()`` just before each fork moves everything the parent holds
into a permanent generation the collector never examines.
"""

import gc

from celery.signals import worker_before_create_process


def _freeze_before_fork(**_):
    gc.collect()  # garbage need not be frozen (and kept) forever
    gc.freeze()


def install() -> None:
    worker_before_create_process.connect(_freeze_before_fork, weak=False, dispatch_uid=__name__)
