.PHONY: run test lint check

# Everything: Debian packages, virtualenv, database, redis (if none is running),
# five workers, beat and Flower in the foreground. Ctrl-C stops them all.
run:
	scripts/bootstrap
	.venv/bin/python manage.py migrate --no-input -v0
	USE_CELERY=1 .venv/bin/python manage.py runplatform

# Same set-up, then lint and the whole test suite (tests start their own redis).
test:
	scripts/bootstrap
	$(MAKE) lint
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

check:
	.venv/bin/python manage.py check
