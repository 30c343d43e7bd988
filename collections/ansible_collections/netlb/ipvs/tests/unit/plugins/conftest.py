# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's run lock in a temporary directory for every test (the modules take it), and
fixtures of the kube-proxy leftovers tests, shared by the step's own tests
(module_utils/_kube_proxy/test_leftovers_node.py) and the module's
(modules/test_k8s_kube_proxy_leftovers.py), both on test_leftovers_node's scripted node."""

from __future__ import annotations

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import ProxyState, StateStore
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._kube_proxy.test_leftovers_node import SERVICE


@pytest.fixture(autouse=True)
def run_lock(tmp_path, monkeypatch):
    """The run lock's default path, in the test's own directory."""
    path = str(tmp_path / 'run' / 'reconcile.lock')
    monkeypatch.setattr(_run_lock, 'DEFAULT_PATH', path)
    return path


@pytest.fixture
def roots(tmp_path):
    """An empty /proc and /sys for the node (tests add what the kernel shows)."""
    proc, sys_root = tmp_path / 'proc', tmp_path / 'sys'
    (proc / 'net').mkdir(parents=True)
    (sys_root / 'module').mkdir(parents=True)
    return proc, sys_root


@pytest.fixture
def state_path(tmp_path):
    """A state file as k8s_service_proxy leaves it after a sync: one service (SERVICE)."""
    path = str(tmp_path / 'state.json')
    StateStore(path).save(ProxyState(services=frozenset([SERVICE]), addresses=frozenset(['10.96.0.1'])))
    return path
