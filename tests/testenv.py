"""Loaded with ``-p tests.testenv`` (pyproject), before pytest-django reads settings.

Every process the tests start (workers, beat, Flower) shares one private var/
directory, one file-based test database and one private redis-server port.
"""

import os
import tempfile
from pathlib import Path

from harness.processes import free_port

VAR_DIR = Path(tempfile.mkdtemp(prefix="platform-tests-"))

os.environ["PLATFORM_VAR_DIR"] = str(VAR_DIR)
os.environ["DJANGO_TEST_DATABASE"] = str(VAR_DIR / "test-db.sqlite3")
os.environ["DJANGO_ENV"] = "development"
# The test process itself runs with USE_CELERY off (unit tests are synchronous);
# integration tests switch their producer to the broker with the live_apps fixture.
os.environ["USE_CELERY"] = "0"
# The reliability and integration tests run drills (record, retry_once, kill_worker) on
# every worker they start: on explicitly, whatever DJANGO_ENV a test picks. A test that
# wants a worker without them sets PLATFORM_DRILLS=0 in that worker's environment.
os.environ["PLATFORM_DRILLS"] = "1"
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL"):
    os.environ.pop(name, None)
