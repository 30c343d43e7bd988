# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The proxy's state file: the formats on disk (1 and 2) read as they were written, clear errors."""

from __future__ import annotations

import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ServiceKey
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.conntrack import Flow
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import (
    ProxyState,
    StateError,
    StateStore,
    dumps,
    loads,
)

# Written by the release before the shared JSON state file (_json_state.py), byte for byte.
TODAYS_FILE = (
    '{"addresses": ["198.51.100.7", "fd00:10:96::a"], "services": [["tcp", "198.51.100.7", 443],'
    ' ["udp", "fd00:10:96::a", 53]], "udp_flows": [[4, "10.96.0.10", 53, "", 0],'
    ' [6, "fd00:10:96::a", 53, "fd00:10:244::5", 5353]], "version": 2}\n')
TODAYS_STATE = ProxyState(
    services=frozenset([ServiceKey.tcp_udp('tcp', '198.51.100.7', 443), ServiceKey.tcp_udp('udp', 'fd00:10:96::a', 53)]),
    addresses=frozenset(['198.51.100.7', 'fd00:10:96::a']),
    udp_flows=frozenset([Flow(4, '10.96.0.10', 53, '', 0), Flow(6, 'fd00:10:96::a', 53, 'fd00:10:244::5', 5353)]))
# Version 1, from releases before the UDP flows were queued.
VERSION_1_FILE = '{"addresses": ["198.51.100.7"], "services": [["tcp", "198.51.100.7", 443]], "version": 1}\n'


def test_a_file_in_todays_format_is_read_and_written_back_the_same(tmp_path):
    path = tmp_path / 'k8s-service-proxy.json'
    path.write_text(TODAYS_FILE)
    store = StateStore(str(path))
    assert store.load() == TODAYS_STATE
    store.save(store.load())
    assert path.read_text() == TODAYS_FILE
    assert oct(os.stat(str(path)).st_mode & 0o777) == oct(0o644)


def test_a_version_1_file_has_no_flows_queued_and_is_written_as_version_2(tmp_path):
    path = tmp_path / 'k8s-service-proxy.json'
    path.write_text(VERSION_1_FILE)
    store = StateStore(str(path))
    state = store.load()
    assert state == ProxyState(services=frozenset([ServiceKey.tcp_udp('tcp', '198.51.100.7', 443)]),
                               addresses=frozenset(['198.51.100.7']))
    store.save(state)
    assert loads(path.read_text()) == state and '"version": 2' in path.read_text()


def test_a_missing_file_is_the_empty_state(tmp_path):
    assert StateStore(str(tmp_path / 'absent' / 'state.json')).load() == ProxyState()


@pytest.mark.parametrize('text, message', [
    pytest.param('not json', 'proxy state is not valid', id='not-json'),
    pytest.param('{"version": 3, "services": [], "addresses": [], "udp_flows": []}', 'unknown version 3',
                 id='future-version'),
    pytest.param('{"version": 2, "services": []}', "proxy state is not valid: 'addresses'", id='missing-field'),
    pytest.param('[]', 'proxy state is not valid: not a JSON object', id='not-an-object'),
    pytest.param('{"version": 2, "services": [], "addresses": [], "udp_flows": [[4, "fd00::1", 53, "", 0]]}',
                 'mixes address families', id='bad-flow'),
])
def test_a_bad_file_names_itself_and_the_problem(tmp_path, text, message):
    path = tmp_path / 'state.json'
    path.write_text(text)
    with pytest.raises(StateError, match=message) as caught:
        StateStore(str(path)).load()
    assert str(caught.value).startswith('%s: ' % path)


def test_an_unwritable_place_is_a_state_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(StateError, match='cannot save proxy state'):
        StateStore(str(blocker / 'state.json')).save(ProxyState())


def test_dumps_is_stable():
    assert dumps(TODAYS_STATE) == TODAYS_FILE
