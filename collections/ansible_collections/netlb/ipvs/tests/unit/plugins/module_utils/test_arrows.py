# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which way the arrows go (the collection's README, "Layout of the code"): the shared
floor imports no room, the engine's rooms never import the shells' rooms (the timer's and the
watcher's), and a room imports another room's public modules and names only."""

from __future__ import annotations

import ast
import os

import pytest

MODULE_UTILS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins', 'module_utils')
PREFIX = 'ansible_collections.netlb.ipvs.plugins.module_utils'
FLOOR = ('_address_text', '_command', '_diff', '_duration', '_errors', '_files', '_gc', '_json_state', '_netlink', '_nftables',
         '_run_lock')
# The engine (the IPVS table, the Kubernetes translation and sync, kube-proxy's hand-over)
# and the rooms of bin/netlb-ipvs's commands, which drive it: the engine imports neither.
ENGINE = ('_ipvs', '_k8s', '_kube_proxy', '_kernel_modules')
SHELLS = ('_reconcile', '_watch')


def _sources():
    for folder, _dirs, files in os.walk(MODULE_UTILS):
        for name in sorted(files):
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, MODULE_UTILS).replace(os.sep, '/'), path


def _room(parts):
    """The room of a module path under module_utils: its first part, without '.py'."""
    return parts[0][:-3] if parts[0].endswith('.py') else parts[0]


def _imports(path):
    """(dotted module under module_utils, name or None) of every collection import."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PREFIX):
            module = node.module[len(PREFIX):].lstrip('.')
            for alias in node.names:
                yield (module, alias.name) if module else (alias.name, None)


SOURCES = sorted(_sources())


def test_the_walk_finds_the_rooms():
    rooms = set(_room(relative.split('/')) for relative, _path in SOURCES)
    assert {'_ipvs', '_k8s', '_netlink', '_errors'} <= rooms
    assert set(FLOOR + ENGINE + SHELLS) <= rooms, 'a room named here is gone: update the tables'


@pytest.mark.parametrize('relative, path', SOURCES, ids=[relative for relative, _path in SOURCES])
def test_arrows(relative, path):
    room = _room(relative.split('/'))
    wrong = []
    for module, name in _imports(path):
        parts = module.split('.')
        target = _room(parts)
        if target == room:
            continue
        if room in FLOOR and target not in FLOOR:
            wrong.append('the floor imports room %s (%s)' % (target, module))
        if room in ENGINE and target in SHELLS:
            wrong.append('the engine imports the shells\' room %s (%s)' % (target, module))
        private = [part for part in parts[1:] if part.startswith('_')]
        if private or (name or '').startswith('_'):
            wrong.append('a private piece of room %s: %s%s' % (target, module, ' import ' + name if name else ''))
    assert wrong == []


def test_the_run_lock_is_on_the_floor():
    """The modules, the timer's runs and the watcher take one lock (the engine's rooms
    through test_arrows' ENGINE -> SHELLS rule): it lives on the floor, not in _reconcile."""
    assert '_run_lock' in FLOOR
    assert os.path.isfile(os.path.join(MODULE_UTILS, '_run_lock.py'))
    assert not os.path.exists(os.path.join(MODULE_UTILS, '_reconcile', 'lock.py'))
