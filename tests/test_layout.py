# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a fresh clone needs: ansible.cfg's inventory is committed, and the collection
declares the Python packages its modules import (requirements.txt, read by ansible-builder
through meta/execution-environment.yml, as kubernetes.core does)."""

import configparser
import os
import re
import subprocess

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = os.path.join(REPO, 'collections', 'ansible_collections', 'netlb', 'ipvs')


def _tracked(path):
    """True when git tracks path (a file a fresh clone has), not merely when it exists here."""
    done = subprocess.run(['git', 'ls-files', '--error-unmatch', path], cwd=REPO, capture_output=True, check=False)
    return done.returncode == 0


def test_ansible_cfg_inventory_is_committed():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, 'ansible.cfg'))
    inventory = config['defaults']['inventory']
    assert _tracked(inventory), '%s is not in git: a fresh clone has no such inventory' % inventory
    # and it is an inventory: hosts under all
    with open(os.path.join(REPO, inventory)) as handle:
        assert yaml.safe_load(handle)['all']['children']


def test_lab_inventory_is_not_committed():
    # The lab's hosts.yml is generated; the check above would pass on a stray copy otherwise.
    assert not _tracked('inventories/lab/hosts.yml')


def test_collection_declares_its_python_requirements():
    with open(os.path.join(COLLECTION, 'meta', 'execution-environment.yml')) as handle:
        environment = yaml.safe_load(handle)
    requirements = os.path.join(COLLECTION, environment['dependencies']['python'])
    with open(requirements) as handle:
        names = [re.split(r'[<>=!~ ;\[]', line.strip())[0].lower()
                 for line in handle if line.strip() and not line.startswith('#')]
    assert 'kubernetes' in names and 'pyyaml' in names
    with open(os.path.join(COLLECTION, 'galaxy.yml')) as handle:
        galaxy = yaml.safe_load(handle)
    assert not any('requirements' in name for name in galaxy['build_ignore'])  # they ship with the collection


def test_galaxy_dependencies_name_every_other_collection_the_plugins_import():
    imported = set()
    for directory, _dirs, files in os.walk(os.path.join(COLLECTION, 'plugins')):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(directory, name)) as handle:
                    imported.update(re.findall(r'ansible_collections\.(\w+\.\w+)\.', handle.read()))
    assert 'netlb.ipvs' in imported
    with open(os.path.join(COLLECTION, 'galaxy.yml')) as handle:
        galaxy = yaml.safe_load(handle)
    assert set(galaxy['dependencies'] or {}) == imported - {'netlb.ipvs'}
