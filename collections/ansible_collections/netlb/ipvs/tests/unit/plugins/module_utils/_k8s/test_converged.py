# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""converged.Mark: exact on every part of what it holds, and no Mark from any doubt."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import converged
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import NodeContext
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import key, table

TEXT = '''
    -A -t 10.96.0.20:80 -s rr
    -a -t 10.96.0.20:80 -r 10.244.1.11:80 -m -w 1
    -a -t 10.96.0.20:80 -r 10.244.1.12:80 -m -w 1
    -A -u 10.96.0.10:53 -s rr
    -a -u 10.96.0.10:53 -r 10.244.1.31:53 -m -w 1
    -A -t 10.96.0.30:80 -s mh -b flag-1,flag-2
    -a -t 10.96.0.30:80 -r 10.244.1.41:80 -m -w 1
'''
TABLE = table(TEXT)
RULES = 'table inet netlb_ipvs {\n}\n'
STATE = b'{"version": 2, "services": [], "addresses": [], "udp_flows": []}'
CONTEXT = NodeContext(name='node-1', zone='zone-a', addresses=(('eth0', '192.0.2.10'), ('kube-ipvs0', '10.96.0.20')),
                      primary=('192.0.2.10',))


def mark(warnings=()):
    return converged.Mark.of('k', TABLE, RULES, STATE, warnings)


def test_a_kernel_read_equal_to_the_marked_table_holds_after_a_round_trip_through_the_file(tmp_path):
    assert TABLE[key('tcp 10.96.0.30:80')].scheduler_flags == ('flag-1', 'flag-2')  # a tuple in the settings
    store = converged.MarkStore(str(tmp_path / 'p.converged.json'))
    store.save(mark(['Service a/b: a warning']))
    loaded = store.load()
    assert loaded == mark(['Service a/b: a warning'])
    # A fresh read: other objects, equal fields (connections are counters, never compared).
    fresh = dict((k, dataclasses.replace(s, connections={('10.244.1.11', 80): (5, 2)})) for k, s in table(TEXT).items())
    assert loaded.holds('k', fresh, RULES, STATE)
    assert loaded.counts == (3, 4)
    assert (tmp_path / 'p.converged.json').stat().st_mode & 0o777 == 0o600


def _weight(table_):
    service = table_[key('tcp 10.96.0.20:80')]
    servers = (service.real_servers[0]._replace(weight=2),) + service.real_servers[1:]
    return {**table_, key('tcp 10.96.0.20:80'): service.replace(real_servers=servers)}


@pytest.mark.parametrize('change', [
    pytest.param(lambda t: dict((k, s) for k, s in t.items() if k != key('udp 10.96.0.10:53')), id='a service gone'),
    pytest.param(lambda t: {**t, **table('-A -t 10.96.0.99:80 -s rr')}, id='a stray service'),
    pytest.param(lambda t: {**t, **table('-A -t 10.96.0.20:80 -s rr\n-a -t 10.96.0.20:80 -r 10.244.1.11:80 -m -w 1')},
                 id='a real server gone'),
    pytest.param(_weight, id='a real server reweighted'),
    pytest.param(lambda t: {**t, key('tcp 10.96.0.20:80'): t[key('tcp 10.96.0.20:80')].replace(scheduler='wlc')},
                 id='a scheduler changed'),
])
def test_any_difference_in_the_table_does_not_hold(change):
    assert mark().holds('k', TABLE, RULES, STATE)
    assert not mark().holds('k', change(dict(TABLE)), RULES, STATE)


def test_other_inputs_rules_or_state_do_not_hold():
    assert not mark().holds('other', TABLE, RULES, STATE)
    assert not mark().holds('k', TABLE, RULES + '# changed\n', STATE)
    assert not mark().holds('k', TABLE, RULES, STATE + b' ')


def test_rules_are_trusted_unlisted_only_on_the_generation_read_before_they_were_listed(tmp_path):
    """rules_text None (the generation unchanged) skips only the rules' comparison; the
    generation survives the file, and any other or unknown generation is no proof."""
    store = converged.MarkStore(str(tmp_path / 'p.converged.json'))
    store.save(converged.Mark.of('k', TABLE, RULES, STATE, (), ['boot-1', 41]))
    loaded = store.load()
    assert loaded.rules_unchanged(['boot-1', 41]) and loaded.holds('k', TABLE, None, STATE)
    for other in (['boot-1', 42], ['boot-2', 41], None, []):
        assert not loaded.rules_unchanged(other), other
    assert not mark().rules_unchanged(['boot-1', 41])  # marked without a generation
    # The rest of the Mark is still compared when the rules are not.
    assert not loaded.holds('k', TABLE, None, STATE + b' ')
    assert not loaded.holds('k', dict(list(TABLE.items())[1:]), None, STATE)


GOOD = {'version': 3, 'key': 'k', 'table': 't', 'counts': [1, 2], 'rules': 'r', 'state': 's'}


def test_a_good_document_is_a_mark(tmp_path):
    path = tmp_path / 'm.json'
    path.write_text(json.dumps(GOOD))
    assert converged.MarkStore(str(path)).load().counts == (1, 2)


@pytest.mark.parametrize('text', ['', 'not json', '{"version": 99}', '{"version": 3, "key": "k"}', '[]',
                                  json.dumps(dict(GOOD, table=[[1]])), json.dumps(dict(GOOD, counts=[1])),
                                  json.dumps(dict(GOOD, counts='12')), json.dumps(dict(GOOD, version=2)),
                                  '{"version": 1, "key": "k", "rules": "r", "state": "s", "table": []}'])
def test_a_mark_in_doubt_is_no_mark(tmp_path, text):
    path = tmp_path / 'm.json'
    path.write_text(text)
    assert converged.MarkStore(str(path)).load() is None


def test_no_file_is_no_mark_and_clear_removes_it(tmp_path):
    store = converged.MarkStore(str(tmp_path / 'm.json'))
    assert store.load() is None
    store.clear()  # absent: nothing to do
    store.save(mark())
    store.clear()
    assert not (tmp_path / 'm.json').exists()


def test_the_inputs_key_follows_every_input():
    base = converged.inputs_key('f', CONTEXT, frozenset(('rr', 'wrr')))
    assert base == converged.inputs_key('f', CONTEXT, frozenset(('wrr', 'rr')))
    others = [
        converged.inputs_key('g', CONTEXT, frozenset(('rr', 'wrr'))),
        converged.inputs_key('f', dataclasses.replace(CONTEXT, addresses=CONTEXT.addresses[:1]), frozenset(('rr', 'wrr'))),
        converged.inputs_key('f', dataclasses.replace(CONTEXT, zone='zone-b'), frozenset(('rr', 'wrr'))),
        converged.inputs_key('f', CONTEXT, frozenset(('rr',))),
        converged.inputs_key('f', CONTEXT, None),
        converged.inputs_key('f', CONTEXT, frozenset(('rr', 'wrr')), code='another release'),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_the_mark_lives_beside_the_state():
    assert converged.path_beside('/var/lib/netlb-ipvs/k8s-service-proxy.json') == \
        '/var/lib/netlb-ipvs/k8s-service-proxy.converged.json'


def test_the_code_digest_follows_every_source_file(tmp_path):
    (tmp_path / '_k8s').mkdir()
    (tmp_path / '_k8s' / 'translate.py').write_text('RULES = 1\n')
    (tmp_path / 'README').write_text('not code')
    first = converged.code_digest(str(tmp_path))
    assert first == converged.code_digest(str(tmp_path))
    (tmp_path / 'README').write_text('still not code')
    assert converged.code_digest(str(tmp_path)) == first
    (tmp_path / '_k8s' / 'translate.py').write_text('RULES = 2\n')
    assert converged.code_digest(str(tmp_path)) != first
    assert converged.code_digest(str(tmp_path / 'absent.zip')) is None
    assert converged.code_digest()  # this checkout's module_utils
