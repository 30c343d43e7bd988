# netlb.ipvs — one entry point for people and CI.
#   make demo   set up, build the lab image if absent, boot the lab, run site.yml, serve a sample cluster
#   make test   the whole suite: unit, sanity, lint, then the VM tests (Molecule + pytest -m vm)
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION := collections/ansible_collections/netlb/ipvs

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || "$$(tools/python-for-venv)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## controller virtualenv (Python >= 3.12 when present)

# ---------------------------------------------------------------------------- lab (qemu TCG VMs)
# lab/netlb-lab is stdlib Python; see `lab/netlb-lab --help` and lab/README.md.
LAB := lab/netlb-lab
NODES ?= 1
SUITE ?= bookworm
SITE ?= site.yml
# Fail loudly when pytest collects nothing (exit 5) instead of reporting an empty success.
PYTEST_RC = rc=$$?; if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; fi; exit $$rc

.PHONY: lab-image lab-up lab-down lab-status
lab-image: ## build (or reuse) the cached lab image (SUITE=bookworm|trixie)
	$(LAB) image --suite $(SUITE)

lab-up: ## boot NODES lab VMs (SUITE=...) and write inventories/lab/hosts.yml
	$(LAB) up --nodes $(NODES) --suite $(SUITE)

lab-down: ## stop the lab VMs, drop their overlays and inventories/lab/hosts.yml
	$(LAB) down

lab-status: ## show the lab VMs
	$(LAB) status

.PHONY: demo
demo: venv ## build the image if absent, boot one node, run site.yml, then a sample cluster's Services (demo/demo.yml)
	$(LAB) up --nodes 1 --suite $(SUITE)
	ansible-playbook -i inventories/lab/hosts.yml $(SITE)
	ansible-playbook -i inventories/lab/hosts.yml demo/demo.yml
	@echo '==> evidence from node1'
	$(LAB) ssh node1 'set -x; lsmod | grep ip_vs; ipvsadm --version; sysctl net.ipv4.ip_forward net.ipv4.vs.conntrack net.ipv4.vs.expire_nodest_conn net.ipv4.vs.expire_quiescent_template'
	@echo '==> the lab is still up: `$(LAB) ssh node1` to look around, `make lab-down` to stop it'

# ---------------------------------------------------------------------------- tests
.PHONY: test test-unit test-vm
TEST_STEPS := test-unit test-sanity lint test-vm
# One step after the other with a header and its duration; stops at the first failure.
test: venv ## everything: unit, sanity, lint, then the VM tests
	@for step in $(TEST_STEPS); do \
	  printf '\n===== make %s =====\n' "$$step"; start=$$SECONDS; \
	  $(MAKE) --no-print-directory "$$step" || { echo "===== make $$step FAILED" >&2; exit 1; }; \
	  printf '===== make %s: ok in %ds =====\n' "$$step" $$((SECONDS - start)); \
	done

test-unit: venv ## collection unit tests (pytest, no VM)
	pytest -m 'not vm'; $(PYTEST_RC)

MOLECULE_SCENARIOS ?= default trixie ipvs_virtual_server
test-vm: venv ## Molecule scenarios (default, trixie, ipvs_virtual_server), then pytest -m vm
	@for s in $(MOLECULE_SCENARIOS); do \
	  printf '\n----- molecule test -s %s -----\n' "$$s"; start=$$SECONDS; \
	  molecule test -s "$$s" || exit 1; \
	  printf -- '----- molecule %s: ok in %ds -----\n' "$$s" $$((SECONDS - start)); \
	done
	pytest -m vm tests/vm; $(PYTEST_RC)

# ---------------------------------------------------------------------------- sanity + lint
# ansible-test runs from the collection directory in throw-away virtualenvs (--venv) for the
# controller's Python; tools/ansible-test-offline seeds the pip bootstrap it cannot download.
# Module code also runs on the targets' Pythons (Debian 12: 3.11): compile + import run
# there too when such a Python is on PATH or under ~/.pyenv, and are skipped otherwise.
SANITY_PYTHON = $$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SANITY_TARGET_PYTHONS ?= 3.9 3.11

.PHONY: test-sanity lint
test-sanity: venv ## ansible-test sanity on the collection (ignore files stay empty)
	ANSIBLE_TEST=$(CURDIR)/$(VENV)/bin/ansible-test tools/ansible-test-offline \
		sanity --venv --python $(SANITY_PYTHON) --color no $(SANITY_ARGS)
	@for v in $(SANITY_TARGET_PYTHONS); do \
		py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | tail -1); \
		bin=$$(dirname "$${py:-$$(command -v python$$v)}"); \
		if [ "$$bin" = . ]; then echo "test-sanity: no python$$v, skipping compile/import there"; continue; fi; \
		PATH="$$bin:$$PATH" ANSIBLE_TEST=$(CURDIR)/$(VENV)/bin/ansible-test tools/ansible-test-offline \
			sanity --venv --python $$v --test compile --test import --color no || exit 1; \
	done

lint: venv ## ansible-lint, production profile (roles, playbooks, site.yml, molecule, inventories)
	ansible-lint $(LINT_ARGS)

# ---------------------------------------------------------------------------- benchmark
# Boots its own lab node (lab/run/bench), flushes its IPVS table again and again, prints
# one markdown table and tears the node down; see bench/README.md and docs/performance.md.
BENCH_ARGS ?=

.PHONY: bench
bench: venv ## IPVS table benchmark, 1,000 and 5,000 services x 10 (BENCH_ARGS="--sizes 1000 --repeat 1")
	$(PY) bench/ipvs_table_bench.py $(BENCH_ARGS)
