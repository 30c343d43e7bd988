# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository's layout. What a fresh clone needs: ansible.cfg's inventory is committed,
and the collection declares the Python packages its modules import (requirements.txt, read
by ansible-builder through meta/execution-environment.yml, as kubernetes.core does). Where
each test lives: one tree per kind of test (README.md "Tests")."""

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


# ---------------------------------------------------------------- one test tree per kind of test
# The convention (README.md "Tests", pytest.ini): unit tests of the collection's Python live
# next to it, in the collection's tests/unit/, one file per source file at the mirrored path
# (tests/unit/plugins/X/test_Y.py or test_Y_<aspect>.py tests plugins/X/Y.py or the package
# plugins/X/Y/); they run no playbook, boot no VM and read nothing outside the collection.
# Everything that runs playbooks, roles or the lab VM, or tests the repository itself, lives
# in the root tests/: kube_api/ (the stand-in Kubernetes API server, a tool of both trees, and
# its own tests), playbooks/, roles/, vm/, and repository tests at its top.
UNIT = os.path.join(COLLECTION, 'tests', 'unit')
PLUGINS = os.path.join(COLLECTION, 'plugins')
ROOT_TESTS = ('kube_api', 'playbooks', 'roles', 'vm')
# Unit tests of more than one source file, each with the reason it cannot mirror one.
UNIT_ACROSS = {
    'plugins/module_utils/test_arrows.py': 'the import rules of every module_utils file',
    'plugins/modules/test_k8s_modules_bad_input.py': 'bad input to four modules against one stand-in API server',
    'plugins/module_utils/_ipvs/backends/test_factory.py': "the package's own get_backend() (backends/__init__.py)",
    'plugins/module_utils/_watch/test_api_watch.py': 'the watcher (node.py, loop.py) on the stand-in API server',
}


def _test_files():
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return sorted(path for path in listed if re.search(r'(^|/)test_[^/]*\.py$', path) and os.path.exists(
        os.path.join(REPO, path)))


def _read(relative):
    with open(os.path.join(REPO, relative)) as handle:
        return handle.read()


def test_every_test_file_is_in_one_of_the_two_trees():
    unit = os.path.relpath(UNIT, REPO) + '/'
    found = _test_files()
    assert any(path.startswith(unit) for path in found) and any(path.startswith('tests/') for path in found)
    stray = [path for path in found if not path.startswith(unit) and not path.startswith('tests/')]
    assert stray == [], 'test files outside the collection\'s tests/unit and the root tests/'


def test_unit_tests_mirror_the_collections_sources():
    """tests/unit/plugins/X/test_Y.py tests plugins/X/Y.py (or the package plugins/X/Y/);
    test_Y_<aspect>.py another side of it."""
    unit = os.path.relpath(UNIT, REPO) + '/'
    wrong = []
    for path in _test_files():
        if not path.startswith(unit):
            continue
        relative = path[len(unit):]
        if relative in UNIT_ACROSS:
            continue
        folder, name = os.path.split(relative)
        source_folder = os.path.join(COLLECTION, folder)
        sources = [entry[:-3] if entry.endswith('.py') else entry for entry in (
            os.listdir(source_folder) if folder.startswith('plugins') and os.path.isdir(source_folder) else ())]
        tested = name[len('test_'):-len('.py')]
        if not any(tested == source or tested.startswith(source + '_') for source in sources if source):
            wrong.append(relative)
    assert wrong == [], 'unit tests that mirror no source file (rename, or add to UNIT_ACROSS with the reason)'
    assert all(os.path.exists(os.path.join(UNIT, relative)) for relative in UNIT_ACROSS)


def test_unit_tests_run_no_playbook_no_vm_and_read_only_the_collection():
    unit = os.path.relpath(UNIT, REPO) + '/'
    wrong = []
    for path in _test_files():
        if path.startswith(unit):
            text = _read(path)
            for mark in ('pytest.mark.vm', 'pytest.mark.playbook', 'ansible-playbook', 'lab_node', 'REPO ='):
                if mark in text:
                    wrong.append((path, mark))
    assert wrong == [], 'a playbook, VM or repository test belongs in the root tests/'


def test_root_tests_run_playbooks_roles_vms_or_test_the_repository():
    """The root tests/ holds the kinds of tests named in ROOT_TESTS and repository tests at
    its top; a playbook run is marked `playbook` (tests/vm/conftest.py marks every VM test)."""
    wrong = []
    for path in _test_files():
        if not path.startswith('tests/'):
            continue
        parts = path.split('/')
        if len(parts) > 2 and parts[1] not in ROOT_TESTS:
            wrong.append((path, 'not one of tests/%s/' % '/, tests/'.join(ROOT_TESTS)))
            continue
        text = _read(path)
        if parts[1] in ('playbooks', 'roles') or len(parts) == 2:
            if 'REPO' not in text:  # reads the repository: playbooks, roles, the demo, git
                wrong.append((path, 'a unit test of the collection: it belongs in its tests/unit'))
        if parts[1] != 'vm' and 'ansible-playbook' in text and 'pytest.mark.playbook' not in text:
            wrong.append((path, 'runs ansible-playbook unmarked'))
    assert wrong == []


# ---------------------------------------------------------------- the maps of the code stay true
MODULE_UTILS = os.path.join(PLUGINS, 'module_utils')


def _named_paths(text):
    """module_utils paths a document names in backticks: `_k8s/translate.py`, `_netlink/`."""
    return set(re.findall(r'`(_[\w/]*(?:\.py|/))`', text))


def test_design_names_only_rooms_that_exist_and_every_room():
    named = _named_paths(_read('docs/design.md'))
    missing = sorted(path for path in named if not os.path.exists(os.path.join(MODULE_UTILS, path)))
    assert missing == [], 'docs/design.md names what module_utils does not hold'
    rooms = set(name + ('/' if os.path.isdir(os.path.join(MODULE_UTILS, name)) else '')
                for name in os.listdir(MODULE_UTILS) if name.startswith('_') and name != '__pycache__')
    assert sorted(rooms - set(path.split('/')[0] + ('/' if '/' in path else '') for path in named)) == [], \
        'a room of module_utils docs/design.md does not name'


def test_the_collection_readme_map_names_what_exists():
    text = _read(os.path.join(os.path.relpath(COLLECTION, REPO), 'README.md'))
    block = text[text.index('## Layout of the code'):]
    block = block[:block.index('## Development')]
    named = set()
    for line in block.splitlines():
        match = re.match(r'^  (_\S+(?:, \S+)?)\s{2,}', line)
        if match:
            first = match.group(1).split(', ')[0]
            named.add(first)
            folder = '' if first.endswith('/') else os.path.dirname(first)  # `_reconcile/, _watch/`
            named.update(os.path.join(folder, other) for other in match.group(1).split(', ')[1:])
    assert len(named) > 20
    missing = sorted(path for path in named if '*' not in path
                     and not os.path.exists(os.path.join(MODULE_UTILS, path.rstrip(','))))
    assert missing == []
