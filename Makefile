# The two commands of the README. Both work as root on a fresh Debian machine with Python 3.11
# and no internet beyond the package registries.
#   make audit   set up .venv, install the collection, audit this machine
#   make test    the same set-up plus everything the tests need, then the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# The built collection is installed here for `make audit`.
COLLECTIONS := $(VENV)/collections
# Tests use the working tree through this link, so no rebuild is needed between edits.
DEV_COLLECTIONS := $(VENV)/dev-collections
REPORT_DIR ?= $(CURDIR)/reports
# Wheels of what an earlier set-up installed (scripts/wheelhouse.py): pip finds the pinned
# versions there when the package index does not answer.
WHEELHOUSE ?= $(HOME)/.cache/nsguard-sysctl/wheels
PIP_INSTALL = $(BIN)/pip install -q --retries 2 --find-links $(WHEELHOUSE)
PYTEST_ARGS ?=

.PHONY: audit runtime-acceptance kernel-truth kernel-truth-host test venv test-venv collection dev-link test-host clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)

venv: $(BIN)/activate
	$(PIP_INSTALL) -r requirements.txt
	-$(BIN)/python scripts/wheelhouse.py $(WHEELHOUSE)

test-venv: $(BIN)/activate
	$(PIP_INSTALL) -r test-requirements.txt
	-$(BIN)/python scripts/wheelhouse.py $(WHEELHOUSE)

# ansible.posix (the remediation playbook's sysctl module) comes from the `ansible` package's
# wheel, kept in the wheelhouse: Galaxy is not reachable (scripts/posix_collection.py).
# ansible.cfg at the repository root points ansible at $(COLLECTIONS).
collection: venv
	rm -rf $(VENV)/dist
	$(BIN)/ansible-galaxy collection build --force --output-path $(VENV)/dist . >/dev/null
	$(BIN)/python scripts/posix_collection.py $(WHEELHOUSE) $(VENV)/dist >/dev/null
	$(BIN)/ansible-galaxy collection install --offline --force -p $(COLLECTIONS) $(VENV)/dist/nsguard-sysctl-*.tar.gz \
	    $(VENV)/dist/ansible-posix-*.tar.gz >/dev/null
	@echo "installed nsguard.sysctl and ansible.posix into $(COLLECTIONS)"

dev-link: $(BIN)/activate
	mkdir -p $(DEV_COLLECTIONS)/ansible_collections/nsguard
	ln -sfn $(CURDIR) $(DEV_COLLECTIONS)/ansible_collections/nsguard/sysctl

audit: collection
	PATH=$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) bash scripts/run-audit.sh "$(REPORT_DIR)"

# Container runtimes and tools from Debian packages (idempotent).
test-host:
	bash scripts/install-test-host.sh

# Measure what every runtime here accepts (root; about 40 s) and rewrite
# rules/knowledge/runtime-acceptance/*.json. Never edit those files by hand.
runtime-acceptance: test-venv test-host
	$(BIN)/python -m tests.integration.runtime_acceptance.measure --out rules/knowledge/runtime-acceptance

test: test-venv collection dev-link test-host
	PATH=$(BIN):$$PATH bash scripts/run-tests.sh $(PYTEST_ARGS)

# qemu, kmod and busybox-static for the kernel matrix only (idempotent): `make test` does not
# install qemu.
kernel-truth-host:
	bash scripts/install-test-host.sh kernel-truth

# Per-kernel truth tables (tests/kernels/truth): this machine's kernel, then Debian's 6.1 and 6.12
# booted in qemu (TCG). Needs root and Debian's archive; not part of `make test` (see
# docs/kernel-truth.md for when to run it and how long it takes).
KERNELS ?= host 6.1 6.12
kernel-truth: test-venv dev-link kernel-truth-host
	PATH=$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(DEV_COLLECTIONS) $(BIN)/python scripts/kernel-truth.py $(KERNELS)

clean:
	rm -rf $(VENV) tests/output reports
