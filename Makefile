.PHONY: run test lint check artifact molecule-default molecule-multihost deploy pytest bench vagrant-test

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
	USE_CELERY=1 .venv/bin/python manage.py runplatform

# The test set-up (adds the test hosts' Debian packages and dev.lock), then lint, the
# test suite (it starts its own redis and workers), both Molecule scenarios on real
# systemd hosts (systemd-nspawn, needs root) and the Vagrant box booted for real.
test:
	scripts/bootstrap test
	$(MAKE) lint
	$(MAKE) pytest
	$(MAKE) molecule-default
	$(MAKE) molecule-multihost
	$(MAKE) vagrant-test

# The fault tests append what they measured to var/reliability-figures.txt.
pytest:
	mkdir -p var && rm -f var/reliability-figures.txt
	RELIABILITY_FIGURES=$(CURDIR)/var/reliability-figures.txt .venv/bin/python -m pytest
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
bench:
	scripts/bootstrap test
	.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.lock
	.venv/bin/python -m bench.run
