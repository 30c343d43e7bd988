# netlb.ipvs — one entry point for people and CI.
#   make demo   set up (system packages, venv, lab image), boot the lab, run site.yml, serve a sample cluster
#   make test   set up, then the whole suite: unit, sanity, lint, then the VM tests (Molecule + pytest -m vm)
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

# ---------------------------------------------------------------------------- system packages
# What the lab (qemu, image tools), the venv (python3-venv) and the ssh-driven tests need
# from Debian. Installed as root, or through sudo; only what is missing, so a machine that
# has everything spends one dpkg-query and no apt-get update.
SYSTEM_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs debian-archive-keyring \
	openssh-client git ca-certificates python3 python3-venv python3-pip
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: system-packages
system-packages: ## install the missing Debian packages the lab and the venv need (as root or via sudo)
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(SYSTEM_PACKAGES) 2>/dev/null \
		| awk '$$NF == "installed" {print $$1}' | sort | comm -13 - <(tr ' ' '\n' <<< "$(SYSTEM_PACKAGES)" | sort)); \
	if [ -z "$$missing" ]; then echo "system-packages: all present"; exit 0; fi; \
	echo "system-packages: installing" $$missing; \
	$(SUDO) apt-get update -q && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

# ---------------------------------------------------------------------------- lab (qemu TCG VMs)
# lab/netlb-lab is stdlib Python; see `lab/netlb-lab --help` and lab/README.md.
LAB := lab/netlb-lab
NODES ?= 1
SUITE ?= bookworm
SITE ?= site.yml
# Fail loudly when pytest collects nothing (exit 5) instead of reporting an empty success.
PYTEST_RC = rc=$$?; if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; fi; exit $$rc

.PHONY: lab-image lab-images lab-up lab-down lab-status
# Building an image needs root (mmdebstrap, file ownership): through sudo when not root,
# then the cache is handed back to the caller. Reusing a built image is a lookup.
NETLB_LAB_CACHE ?= $(HOME)/.cache/netlb-ipvs-lab
export NETLB_LAB_CACHE
LAB_SUITES ?= bookworm trixie
lab-image: system-packages ## build (or reuse) the cached lab image (SUITE=bookworm|trixie)
	$(SUDO) env NETLB_LAB_CACHE="$(NETLB_LAB_CACHE)" python3 $(LAB) image --suite $(SUITE)
	@[ -z "$(SUDO)" ] || $(SUDO) chown -R "$$(id -u):$$(id -g)" "$(NETLB_LAB_CACHE)"

lab-images: system-packages ## build (or reuse) every lab image the VM tests boot (LAB_SUITES)
	@for suite in $(LAB_SUITES); do \
	  $(SUDO) env NETLB_LAB_CACHE="$(NETLB_LAB_CACHE)" python3 $(LAB) image --suite $$suite || exit 1; \
	done
	@[ -z "$(SUDO)" ] || $(SUDO) chown -R "$$(id -u):$$(id -g)" "$(NETLB_LAB_CACHE)"

lab-up: ## boot NODES lab VMs (SUITE=...) and write inventories/lab/hosts.yml
	$(LAB) up --nodes $(NODES) --suite $(SUITE)

lab-down: ## stop the lab VMs, drop their overlays and inventories/lab/hosts.yml
	$(LAB) down

lab-status: ## show the lab VMs
	$(LAB) status

.PHONY: demo
demo: system-packages venv lab-image ## install what is missing, boot one node, run site.yml, then a sample cluster's Services (demo/demo.yml)
	$(LAB) up --nodes 1 --suite $(SUITE)
	ansible-playbook -i inventories/lab/hosts.yml $(SITE)
	ansible-playbook -i inventories/lab/hosts.yml demo/demo.yml
	@echo '==> evidence from node1'
	$(LAB) ssh node1 'set -x; lsmod | grep ip_vs; ipvsadm --version; sysctl net.ipv4.ip_forward net.ipv4.vs.conntrack net.ipv4.vs.expire_nodest_conn net.ipv4.vs.expire_quiescent_template'
	@echo '==> the lab is still up: `$(LAB) ssh node1` to look around, `make lab-down` to stop it'

# ---------------------------------------------------------------------------- tests
.PHONY: test test-unit test-playbooks test-vm
TEST_STEPS := test-unit test-playbooks test-sanity lint test-vm
LAB_IMAGES_LOG ?= $(CURDIR)/lab/run/lab-images.log
# One step after the other with a header and its duration; stops at the first failure. As
# root, the lab images test-vm boots are built meanwhile (mostly downloads and unpacking:
# they cost the steps before little) and their log is shown when test-vm begins; through
# sudo (which may ask for a password) test-vm builds them itself, in the foreground.
test: system-packages venv ## everything: unit, sanity, lint, then the VM tests (installs what is missing first)
	@mkdir -p $(dir $(LAB_IMAGES_LOG)); images=; \
	if [ -z "$(SUDO)" ]; then \
	  ( $(MAKE) --no-print-directory lab-images > $(LAB_IMAGES_LOG) 2>&1 ) & images=$$!; \
	  trap 'kill $$images 2>/dev/null' EXIT; \
	fi; \
	for step in $(TEST_STEPS); do \
	  if [ "$$step" = test-vm ] && [ -n "$$images" ]; then \
	    printf '\n===== make lab-images (built beside the steps before) =====\n'; start=$$SECONDS; \
	    wait $$images; images_rc=$$?; cat $(LAB_IMAGES_LOG); \
	    [ $$images_rc -eq 0 ] || { echo "===== make lab-images FAILED" >&2; exit 1; }; \
	    printf '===== make lab-images: ok, waited %ds =====\n' $$((SECONDS - start)); \
	  fi; \
	  printf '\n===== make %s =====\n' "$$step"; start=$$SECONDS; \
	  $(MAKE) --no-print-directory "$$step" || { echo "===== make $$step FAILED" >&2; exit 1; }; \
	  printf '===== make %s: ok in %ds =====\n' "$$step" $$((SECONDS - start)); \
	done

test-unit: venv ## unit tests (pytest, no VM, no ansible-playbook runs)
	pytest -m 'not vm and not playbook'; $(PYTEST_RC)

test-playbooks: venv ## playbooks and roles run by ansible-playbook on the controller against the stand-in API server
	pytest -m playbook --durations=10; $(PYTEST_RC)

# default's verify also runs the ipvs_virtual_server scenario's module tests on its node
# (one boot and one site.yml run fewer); `molecule test -s ipvs_virtual_server` runs them alone.
MOLECULE_SCENARIOS ?= default trixie
# The two streams run side by side: a TCG guest keeps about one of the runner's two CPUs
# busy and leaves the other mostly idle (ssh, timers, reboots), so the Molecule scenarios
# (one lab each, one after the other) run beside pytest -m vm (its own lab). Each stream
# has its own run directory and inventory; Molecule's output is printed when both ended.
MOLECULE_LOG ?= $(CURDIR)/lab/run/molecule.log
# The VM tests that run in the Molecule stream after its scenarios, in a pytest session of
# their own (its own lab node and --basetemp: two sessions never share pytest's numbered
# directories), so the two streams end close together; the rest of tests/vm runs beside.
# Each of these files prepares the node it needs itself (apt), none needs test_reconcile.py's
# site.yml run.
VM_TESTS_AFTER_MOLECULE ?= tests/vm/test_handover.py
VM_AFTER_MOLECULE_TEMP ?= $(CURDIR)/lab/run/pytest-after-molecule
test-vm: venv lab-images ## Molecule scenarios (default with the ipvs_virtual_server tests, trixie), then some VM tests, beside pytest -m vm
	@mkdir -p $(dir $(MOLECULE_LOG)); \
	( for s in $(MOLECULE_SCENARIOS); do \
	    printf '\n----- molecule test -s %s -----\n' "$$s"; start=$$SECONDS; \
	    molecule test -s "$$s" || { printf -- '----- molecule %s: FAILED after %ds -----\n' "$$s" $$((SECONDS - start)); exit 1; }; \
	    printf -- '----- molecule %s: ok in %ds -----\n' "$$s" $$((SECONDS - start)); \
	  done; \
	  if [ -n "$(strip $(VM_TESTS_AFTER_MOLECULE))" ]; then \
	    printf '\n----- pytest -m vm %s -----\n' "$(strip $(VM_TESTS_AFTER_MOLECULE))"; start=$$SECONDS; \
	    pytest -m vm $(VM_TESTS_AFTER_MOLECULE) --basetemp=$(VM_AFTER_MOLECULE_TEMP) --durations=10; after_rc=$$?; \
	    printf -- '----- pytest after Molecule: rc=%d in %ds -----\n' $$after_rc $$((SECONDS - start)); \
	    [ $$after_rc -eq 0 ] || exit 1; \
	  fi ) > $(MOLECULE_LOG) 2>&1 & molecule_pid=$$!; \
	start=$$SECONDS; pytest -m vm tests/vm $(addprefix --ignore=,$(VM_TESTS_AFTER_MOLECULE)) --durations=20; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; fi; \
	printf -- '----- pytest -m vm: rc=%d in %ds -----\n' $$rc $$((SECONDS - start)); \
	wait $$molecule_pid; molecule_rc=$$?; \
	printf '\n----- Molecule, then pytest after it (ran beside pytest -m vm), rc=%d: its output -----\n' $$molecule_rc; \
	cat $(MOLECULE_LOG); grep -- '^----- \(molecule\|pytest after\) ' $(MOLECULE_LOG); \
	[ $$rc -eq 0 ] && [ $$molecule_rc -eq 0 ]

# ---------------------------------------------------------------------------- sanity + lint
# ansible-test runs from the collection directory in throw-away virtualenvs (--venv) for the
# controller's Python; tools/ansible-test-offline seeds the pip bootstrap it cannot download.
# Module code also runs on the targets' Pythons (Debian 12: 3.11): compile + import run
# there too when such a Python is on PATH or under ~/.pyenv; a missing one is skipped
# locally and fails in CI (CI set, as .ci/run does), where every target must be checked.
SANITY_PYTHON = $$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
SANITY_TARGET_PYTHONS ?= 3.9 3.11

.PHONY: test-sanity lint
test-sanity: venv ## ansible-test sanity on the collection (ignore files stay empty)
	ANSIBLE_TEST=$(CURDIR)/$(VENV)/bin/ansible-test tools/ansible-test-offline \
		sanity --venv --python $(SANITY_PYTHON) --color no $(SANITY_ARGS)
	@for v in $(SANITY_TARGET_PYTHONS); do \
		py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | tail -1); \
		bin=$$(dirname "$${py:-$$(command -v python$$v)}"); \
		if [ "$$bin" = . ]; then \
			case "$${CI:-}" in ''|0|false|no) echo "test-sanity: no python$$v, skipping compile/import there"; continue;; esac; \
			echo "test-sanity: no python$$v, and in CI every target Python is checked (install it, or set SANITY_TARGET_PYTHONS)" >&2; exit 1; \
		fi; \
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
