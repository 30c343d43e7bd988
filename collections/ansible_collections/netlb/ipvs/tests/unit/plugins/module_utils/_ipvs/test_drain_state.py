# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The drain state file: round trip, atomic replacement, clear errors."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils import _json_state, _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import (
    DrainStateError,
    DrainStore,
    dumps,
    loads,
)
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import drain

STATES = [
    pytest.param({}, id='empty'),
    pytest.param({'tcp 10.0.0.1:80 10.1.0.2:80': 1700000000.5}, id='tcp'),
    pytest.param({'udp [fd00::1]:53 [fd00::2]:53': 1.0, 'fwmark 10 10.1.0.2:0': 2.0,
                  'fwmark 11 ipv6 [fd00::3]:0': 3.0, 'sctp 10.0.0.3:9000 10.1.0.9:9000': 4.0}, id='every-kind'),
]


@pytest.mark.parametrize('state', STATES)
def test_round_trip(state):
    assert loads(dumps(drain(state))) == drain(state)


def test_dumps_is_stable():
    state = drain({'tcp 10.0.0.2:80 10.1.0.2:80': 2.0, 'tcp 10.0.0.1:80 10.1.0.2:80': 1.0})
    assert dumps(state) == dumps(dict(reversed(list(state.items()))))


@pytest.mark.parametrize('text, message', [
    pytest.param('not json', 'drain state is not valid', id='not-json'),
    pytest.param('{"version": 2, "draining": []}', 'unknown version 2', id='future-version'),
    pytest.param('{"version": 1, "draining": [{"service": {}}]}', 'drain state is not valid', id='missing-fields'),
    pytest.param('[]', 'drain state is not valid', id='not-an-object'),
])
def test_loads_refuses_garbage(text, message):
    with pytest.raises(DrainStateError, match=message):
        loads(text)


def test_store_missing_file_is_empty(tmp_path):
    assert DrainStore(str(tmp_path / 'absent' / 'state.json')).load() == {}


def test_store_saves_atomically_and_creates_directory(tmp_path, monkeypatch):
    path = str(tmp_path / 'var' / 'lib' / 'netlb-ipvs' / 'drain-state.json')
    store = DrainStore(path)
    written = []
    real_write = _json_state.write_atomic
    monkeypatch.setattr(_json_state, 'write_atomic', lambda *args, **kw: written.append(args) or real_write(*args, **kw))
    state = drain({'tcp 10.0.0.1:80 10.1.0.2:80': 5.0})
    store.save(state)
    assert [args[0] for args in written] == [path]
    assert store.load() == state
    assert json.loads(open(path).read())['version'] == 1
    assert sorted(os.listdir(os.path.dirname(path))) == ['drain-state.json']  # no temporary file left


def test_store_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('{')
    with pytest.raises(DrainStateError, match=str(path)):
        DrainStore(str(path)).load()


def test_store_unwritable_is_a_drain_state_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(DrainStateError, match='cannot save drain state'):
        DrainStore(str(blocker / 'state.json')).save({})


def test_a_held_lock_is_waited_for_then_names_its_holder(tmp_path):
    store = DrainStore(str(tmp_path / 'state.json'))
    with _run_lock.held('a stuck run', path=store.path + '.lock'):
        with pytest.raises(_run_lock.LockBusy, match=r'state\.json\.lock: pid \d+, a stuck run, since .*; waited 0 s'):
            with store.lock(wait=0.2):
                pass


def test_lock_can_be_taken_again_and_leaves_a_lock_file(tmp_path):
    store = DrainStore(str(tmp_path / 'd' / 'state.json'))
    with store.lock():
        pass
    with store.lock():
        assert os.path.exists(str(tmp_path / 'd' / 'state.json.lock'))


# Written by the release before the shared JSON state file (_json_state.py), byte for byte:
# a node upgraded without notice reads its file and writes it back unchanged.
TODAYS_FILE = (
    '{"version": 1, "draining": [\n'
    '{"server": {"address": "fd00::2", "port": 0}, "service": {"family": 6, "fwmark": 10, "protocol": "fwmark"},'
    ' "since": 1765000001.0},\n'
    '{"server": {"address": "192.168.10.11", "port": 6443}, "service": {"address": "10.96.0.1", "family": 4,'
    ' "port": 443, "protocol": "tcp"}, "since": 1765000000.25}\n'
    ']}\n')


def test_a_file_in_todays_format_is_read_and_written_back_the_same(tmp_path):
    path = tmp_path / 'drain-state.json'
    path.write_text(TODAYS_FILE)
    store = DrainStore(str(path))
    state = store.load()
    assert state == drain({'tcp 10.96.0.1:443 192.168.10.11:6443': 1765000000.25,
                           'fwmark 10 ipv6 [fd00::2]:0': 1765000001.0})
    store.save(state)
    assert path.read_text() == TODAYS_FILE
    assert oct(os.stat(str(path)).st_mode & 0o777) == oct(0o644)
