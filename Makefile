# netlb.ipvs — one entry point for people and CI.
#   make demo   set up, build the lab image if absent, boot the lab, run site.yml, show the node
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
