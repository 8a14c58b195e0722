.PHONY: run test check-quick setup lint check artifact molecule-default molecule-multihost deploy \
	pytest pytest-unit pytest-integration pytest-reliability bench vagrant-test

# timer: every playbook run (converge, idempotence, verify) reports how long it took.
ANSIBLE_ENV = PATH=$(CURDIR)/.venv/bin:$$PATH ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 \
	ANSIBLE_CALLBACKS_ENABLED=ansible.posix.timer
INVENTORY ?= staging

# Everything running needs (redis-server, virtualenv with requirements/run.lock, no
# test tools), the database, redis (if none is running), five workers, beat and
# Flower in the foreground. Ctrl-C stops them all.
run:
	scripts/bootstrap run
	.venv/bin/python manage.py migrate --no-input -v0
	USE_CELERY=1 .venv/bin/python manage.py runplatform $(RUN_ARGS)

# The test set-up (adds the test hosts' Debian packages and dev.lock), then lint, the
# test suite in three stages (the integration and reliability tests start their own
# redis and workers), both Molecule scenarios on real systemd hosts (systemd-nspawn,
# needs root) and the Vagrant box booted for real. Ends with a table of the stages and
# their durations; a failed stage is named in the last lines with what failed in it.
STAGES_TEST = setup=setup lint=lint unit=pytest-unit integration=pytest-integration \
	reliability=pytest-reliability molecule-default=molecule-default \
	molecule-multihost=molecule-multihost box=vagrant-test
test:
	scripts/stages $(STAGES_TEST)

# The developer's loop: lint, unit and the integration tests (no test hosts, no box).
check-quick:
	scripts/stages setup=setup lint=lint unit=pytest-unit integration=pytest-integration

setup:
	scripts/bootstrap test

PYTEST = .venv/bin/python -m pytest
# Everything pytest runs, in one go. The fault tests append what they measured to
# var/reliability-figures.txt.
pytest:
	mkdir -p var && rm -f var/reliability-figures.txt
	RELIABILITY_FIGURES=$(CURDIR)/var/reliability-figures.txt $(PYTEST)
	@echo "--- reliability figures ---"; cat var/reliability-figures.txt

pytest-unit:
	$(PYTEST) -m "not integration and not reliability"

pytest-integration:
	$(PYTEST) -m integration

# The fault tests mostly wait (leases expiring, due times, restarts): two at a time, each
# with its own redis-server and workers (tests/testenv.py gives every pytest process its
# own port and directory). 19 tests: 700 s one by one, 359 s two at a time (2 cores);
# three at a time on 2 cores made a recovery time out under load.
RELIABILITY_PROCESSES ?= 2
pytest-reliability:
	mkdir -p var && rm -f var/reliability-figures.txt
	RELIABILITY_FIGURES=$(CURDIR)/var/reliability-figures.txt $(PYTEST) -m reliability \
		-n $(RELIABILITY_PROCESSES) --dist worksteal
	@echo "--- reliability figures ---"; cat var/reliability-figures.txt

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	cd ansible && $(ANSIBLE_ENV) yamllint .
	cd ansible && $(ANSIBLE_ENV) ansible-lint --offline
	for unit in systemd/*.service; do systemd-analyze verify "$$unit" || exit 1; done

check:
	.venv/bin/python manage.py check

# The one deployable file: dist/platform.pyz (Shiv).
artifact:
	scripts/build-artifact

# A failed step prints, at the end, the failing task and every platform unit's status
# and journal on every host (scripts/molecule-scenario).
molecule-default: artifact
	$(ANSIBLE_ENV) scripts/molecule-scenario default

molecule-multihost: artifact
	$(ANSIBLE_ENV) scripts/molecule-scenario multihost

# The Vagrant dev box booted for real (offline box, libvirt, qemu emulation here),
# checked from the host and destroyed (~23 min with the box cached).
vagrant-test:
	scripts/vagrant-test

# make deploy INVENTORY=production
deploy: artifact
	cd ansible && $(ANSIBLE_ENV) ansible-playbook -i inventories/$(INVENTORY)/hosts.yml site.yml

# Performance beside stock Celery, Dramatiq and Huey (not a test: prints figures).
# BENCH_BASELINE=<git revision> adds that revision's platform (platform@<short sha>),
# measured like this tree's in the same run; BENCH_SYSTEMS and BENCH_STAGES pick what
# is measured. This tree against the previous main, one worker each (~1.5 min):
#   make bench BENCH_BASELINE=<rev> BENCH_SYSTEMS=platform,platform@base BENCH_STAGES=worker
bench:
	scripts/bootstrap test
	.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.lock
	.venv/bin/python -m bench.run
