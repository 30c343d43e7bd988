# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The planner, case by case: tables in `ipvsadm -S -n` text, actions one per line."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    ACTION_ORDER,
    RealServer,
    Scope,
    ServiceKey,
    VirtualService,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.plan import apply_to_table, plan, settle_drains
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation import parse_scope
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import (
    brief,
    drain,
    drain_names,
    key,
    table,
)

NOW = 1000000.0
SCOPE = ['10.0.0.0/24', 'fd00::/64', 'fwmark:1-99']

WEB = '''
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1
'''
WEB_ONE = '''
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
'''
FOREIGN = '''
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.9.0.1:80 -m -w 1
'''
DNS = '''
-A -u 10.0.0.53:53 -s rr
-a -u 10.0.0.53:53 -r 10.1.0.1:53 -m -w 1
-a -u 10.0.0.53:53 -r 10.1.0.2:53 -m -w 1
'''
DNS_ONE = '''
-A -u 10.0.0.53:53 -s rr
-a -u 10.0.0.53:53 -r 10.1.0.1:53 -m -w 1
'''
MARK = '''
-A -f 10 -s rr
-a -f 10 -r 10.1.0.1:0 -g -w 1
-a -f 10 -r 10.1.0.2:0 -g -w 1
'''
MARK_ONE = '''
-A -f 10 -s rr
-a -f 10 -r 10.1.0.1:0 -g -w 1
'''
GONE = 'tcp 10.0.0.1:80 10.1.0.2:80'  # the real server that leaves WEB

# Columns: current table, desired table, options for plan(), connections in the current
# table, drain state before, expected actions (brief), expected drain state after.
CASES = [
    pytest.param('', WEB, {}, {}, {},
                 ['add_service tcp 10.0.0.1:80 new',
                  'add_server tcp 10.0.0.1:80 10.1.0.1:80 w1 new',
                  'add_server tcp 10.0.0.1:80 10.1.0.2:80 w1 new'], {}, id='add-service-with-servers'),
    pytest.param(WEB, WEB, {}, {}, {}, [], {}, id='no-op'),
    pytest.param(WEB + FOREIGN, WEB, {}, {}, {}, [], {}, id='foreign-service-untouched'),
    pytest.param(WEB, WEB.replace('-s rr', '-s wlc'), {}, {}, {},
                 ['edit_service tcp 10.0.0.1:80 scheduler'], {}, id='edit-scheduler-in-place'),
    pytest.param(WEB, WEB.replace('-s rr', '-s sh -b sh-port'), {}, {}, {},
                 ['edit_service tcp 10.0.0.1:80 scheduler,scheduler_flags'], {}, id='edit-scheduler-flags'),
    pytest.param(WEB, WEB.replace('-s rr', '-s rr -p 300 -M 255.255.255.0'), {}, {}, {},
                 ['edit_service tcp 10.0.0.1:80 persistence_timeout,persistence_netmask'], {},
                 id='edit-persistence'),
    pytest.param(WEB, WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 5'), {}, {}, {},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w5 weight'], {}, id='edit-weight-in-place'),
    pytest.param(WEB, WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -g -w 1'), {}, {}, {},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w1 forwarding'], {}, id='edit-forwarding-in-place'),
    pytest.param(WEB, WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 1 -x 100 -y 50'), {}, {}, {},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w1 upper_threshold,lower_threshold'], {},
                 id='edit-thresholds-in-place'),
    pytest.param(WEB, WEB_ONE + '-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1', {'graceful': False}, {}, {},
                 ['add_server tcp 10.0.0.1:80 10.1.0.3:80 w1 new',
                  'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w1 purge'], {}, id='add-before-delete'),
    pytest.param(WEB, WEB_ONE, {}, {GONE: (3, 7)}, {},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain'], {GONE: NOW}, id='drain-busy-server'),
    pytest.param(WEB, WEB_ONE, {}, {}, {},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain'], {GONE: NOW},
                 id='drain-idle-server-with-weight-first'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {}, {}, {GONE: NOW - 5},
                 ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle'], {}, id='drained-and-idle-goes'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {}, {}, {},
                 ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle'], {}, id='weight-0-and-idle-goes-at-once'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {}, {GONE: (0, 1)},
                 {GONE: NOW - 5000}, [], {GONE: NOW - 5000}, id='wait-until-idle-by-default'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {'drain_timeout': 60},
                 {GONE: (1, 0)}, {GONE: NOW - 59}, [], {GONE: NOW - 59}, id='drain-timeout-not-yet'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {'drain_timeout': 60},
                 {GONE: (1, 0)}, {GONE: NOW - 60},
                 ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain_timeout'], {}, id='drain-timeout-passed'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {'drain_timeout': 60},
                 {GONE: (1, 0)}, {}, [], {GONE: NOW}, id='weight-0-by-hand-starts-the-clock'),
    pytest.param(WEB, WEB_ONE, {'drain_timeout': 60}, {GONE: (1, 0)}, {GONE: NOW - 100},
                 ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w1 drain_timeout'], {},
                 id='weight-restored-by-hand-after-timeout'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'),
                 WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 5'), {}, {GONE: (2, 2)}, {GONE: NOW - 5},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w5 undrain'], {}, id='comeback-gets-weight-back'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'),
                 WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), {}, {GONE: (2, 2)}, {GONE: NOW - 5},
                 [], {}, id='comeback-at-weight-0-leaves-drain-state'),
    pytest.param(DNS, DNS_ONE, {}, {'udp 10.0.0.53:53 10.1.0.2:53': (0, 9)}, {},
                 ['delete_server udp 10.0.0.53:53 10.1.0.2:53 w1 purge'], {}, id='udp-deleted-at-once'),
    pytest.param(MARK, MARK_ONE, {}, {'fwmark 10 10.1.0.2:0': (4, 0)}, {},
                 ['edit_server fwmark 10 10.1.0.2:0 w0 drain'], {'fwmark 10 10.1.0.2:0': NOW},
                 id='fwmark-drains'),
    pytest.param(WEB, WEB_ONE, {'graceful': False}, {GONE: (3, 7)}, {},
                 ['delete_server tcp 10.0.0.1:80 10.1.0.2:80 w1 purge'], {}, id='not-graceful'),
    pytest.param(WEB, WEB_ONE, {'purge_real_servers': False}, {}, {}, [], {}, id='purge-false-keeps-servers'),
    pytest.param(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 0'), WEB_ONE, {'purge_real_servers': False},
                 {GONE: (1, 0)}, {GONE: NOW - 5}, [], {}, id='purge-false-forgets-drain'),
    pytest.param(WEB + DNS + FOREIGN, DNS, {}, {}, {},
                 ['delete_service tcp 10.0.0.1:80 not listed'], {}, id='exclusive-deletes-unlisted-in-scope'),
    pytest.param(WEB + DNS + FOREIGN, DNS, {'exclusive': False}, {}, {}, [], {}, id='exclusive-false-keeps'),
    pytest.param(WEB + DNS, '', {}, {GONE: (5, 5)}, {GONE: NOW - 1, 'tcp 192.0.2.1:80 10.9.0.1:80': 7.0},
                 ['delete_service tcp 10.0.0.1:80 not listed', 'delete_service udp 10.0.0.53:53 not listed'],
                 {'tcp 192.0.2.1:80 10.9.0.1:80': 7.0}, id='service-delete-is-immediate-other-scopes-kept'),
    pytest.param('''
                 -A -t 10.0.0.1:80 -s rr
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
                 -a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1
                 -a -t 10.0.0.1:80 -r 10.1.0.4:80 -m -w 1
                 -A -t 10.0.0.2:80 -s rr
                 ''', '''
                 -A -t 10.0.0.1:80 -s wrr
                 -a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3
                 -a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 1
                 -A -t 10.0.0.3:80 -s rr
                 -a -t 10.0.0.3:80 -r 10.1.0.1:80 -m -w 1
                 ''', {'drain_timeout': 1}, {'tcp 10.0.0.1:80 10.1.0.4:80': (1, 0)}, {'tcp 10.0.0.1:80 10.1.0.2:80': NOW - 1},
                 ['add_service tcp 10.0.0.3:80 new',
                  'edit_service tcp 10.0.0.1:80 scheduler',
                  'add_server tcp 10.0.0.1:80 10.1.0.3:80 w1 new',
                  'add_server tcp 10.0.0.3:80 10.1.0.1:80 w1 new',
                  'edit_server tcp 10.0.0.1:80 10.1.0.1:80 w3 weight',
                  'edit_server tcp 10.0.0.1:80 10.1.0.4:80 w0 drain',
                  'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w1 drain_timeout',
                  'delete_service tcp 10.0.0.2:80 not listed'],
                 {'tcp 10.0.0.1:80 10.1.0.4:80': NOW}, id='every-kind-in-order'),
    pytest.param('''
                 -A -t [fd00::1]:443 -s rr
                 -a -t [fd00::1]:443 -r [fd00::10]:8443 -m -w 1
                 ''', '''
                 -A -t [fd00::1]:443 -s rr -p 60 -M 64
                 -a -t [fd00::1]:443 -r [fd00::10]:8443 -m -w 1
                 -a -t [fd00::1]:443 -r [fd00::11]:8443 -m -w 1
                 ''', {}, {}, {},
                 ['edit_service tcp [fd00::1]:443 persistence_timeout,persistence_netmask',
                  'add_server tcp [fd00::1]:443 [fd00::11]:8443 w1 new'], {}, id='ipv6'),
]


@pytest.mark.parametrize('current, desired, options, connections, drain_before, expected, drain_after', CASES)
def test_plan(current, desired, options, connections, drain_before, expected, drain_after):
    current_table = table(current, connections)
    result = plan(table(desired), current_table, parse_scope(SCOPE), drain_state=drain(drain_before), now=NOW,
                  **options)
    assert [brief(action) for action in result.actions] == expected
    assert drain_names(result.drain_state) == drain_after

    # Invariants every plan keeps.
    order = [ACTION_ORDER.index(action.op) for action in result.actions]
    assert order == sorted(order)
    assert all(parse_scope(SCOPE).contains(action.service.key) for action in result.actions)
    assert result.changed == bool(expected)
    # The table after is exactly what the actions make of the table before, counters too.
    replayed = apply_to_table(result.before, result.actions)
    assert result.after == replayed
    assert all(result.after[k].connections == replayed[k].connections for k in replayed)
    # settle_drains with the counters first read (what check mode gives it) deletes only
    # idle drained servers, in order, and the run's actions replay to its after.
    settled = settle_drains(result, counters_of(current_table, result.settle))
    assert all((action.op, action.reason) == ('delete_server', 'idle') for action in settled.actions)
    assert [action.service.key for action in settled.actions] == sorted(action.service.key
                                                                        for action in settled.actions)
    assert apply_to_table(result.before, result.actions + settled.actions) == settled.after
    # One run converges: the next one, from the table this run leaves, has nothing to do.
    again = plan(table(desired), settled.after, parse_scope(SCOPE), drain_state=settled.drain_state, now=NOW,
                 **options)
    assert [brief(action) for action in again.actions] == []


def counters_of(current, keys):
    """What a re-read of keys gives: every real server's (active, inactive)."""
    return dict((k, dict((rs.key, current[k].connections_of(rs.key)) for rs in current[k].real_servers))
                for k in keys if k in current)


@pytest.mark.parametrize('current, desired, connections, recount, expected, drain_after', [
    pytest.param(WEB, WEB_ONE, {}, {GONE: (0, 0)},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain',
                  'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle'], {}, id='idle-goes-in-the-same-run'),
    pytest.param(WEB, WEB_ONE, {GONE: (0, 0)}, {GONE: (0, 1)},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain'], {GONE: NOW},
                 id='a-connection-came-before-weight-0-waits'),
    pytest.param(WEB, WEB_ONE, {GONE: (2, 0)}, {GONE: (0, 0)},
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain',
                  'delete_server tcp 10.0.0.1:80 10.1.0.2:80 w0 idle'], {}, id='closed-meanwhile-goes'),
    pytest.param(WEB, WEB_ONE, {}, {}, ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain'], {GONE: NOW},
                 id='not-re-read-waits'),
    pytest.param(WEB + MARK, WEB_ONE + MARK.replace('-a -f 10 -r 10.1.0.2:0 -g -w 1', ''),
                 {GONE: (1, 0)}, {GONE: (1, 0), 'fwmark 10 10.1.0.2:0': (0, 0)},
                 ['edit_server fwmark 10 10.1.0.2:0 w0 drain', 'edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain',
                  'delete_server fwmark 10 10.1.0.2:0 w0 idle'], {GONE: NOW}, id='per-server'),
])
def test_settle_drains(current, desired, connections, recount, expected, drain_after):
    first = plan(table(desired), table(current, connections), parse_scope(SCOPE), now=NOW)
    counts = counters_of(table(current, recount), first.settle) if recount else {}
    second = settle_drains(first, counts)
    assert [brief(action) for action in first.actions + second.actions] == expected
    assert drain_names(second.drain_state) == drain_after
    assert [(str(entry.service), entry.server.endpoint) for entry in second.draining] == [
        tuple(name.rsplit(' ', 1)) for name in drain_after]
    assert second.before == first.before


SINGLE = Scope(keys=frozenset([key('tcp 10.0.0.1:80')]))


@pytest.mark.parametrize('current, desired, expected', [
    pytest.param(WEB + DNS + '-A -t 10.0.0.1:443 -s rr', WEB_ONE,
                 ['edit_server tcp 10.0.0.1:80 10.1.0.2:80 w0 drain'], id='only-the-named-service'),
    pytest.param(WEB + DNS, '', ['delete_service tcp 10.0.0.1:80 not listed'], id='absent-deletes-only-it'),
])
def test_single_form_owns_one_service(current, desired, expected):
    result = plan(table(desired), table(current), SINGLE, now=NOW)
    assert [brief(action) for action in result.actions] == expected
    assert set(result.before) == {key('tcp 10.0.0.1:80')}


def test_desired_outside_scope_is_refused():
    with pytest.raises(ValidationError, match='tcp 192.0.2.1:80: outside scope'):
        plan(table(FOREIGN), {}, parse_scope(SCOPE))


def test_before_and_after_cover_the_scope_only():
    result = plan(table(DNS), table(WEB + FOREIGN), parse_scope(SCOPE), now=NOW)
    assert sorted(map(str, result.before)) == ['tcp 10.0.0.1:80']
    assert sorted(map(str, result.after)) == ['udp 10.0.0.53:53']
    assert result.after == table(DNS)


def test_edits_carry_the_complete_entry_and_the_after_table_keeps_counters():
    current = table(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -m -w 1 -x 9 -y 3'), {GONE: (4, 2)})
    desired = table(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -g -w 2 -x 9 -y 3').replace('-s rr', '-s sh'))
    result = plan(desired, current, parse_scope(SCOPE), now=NOW)
    edit_service, edit_server = result.actions
    assert edit_service.service == desired[key('tcp 10.0.0.1:80')]
    assert edit_server.server == RealServer('10.1.0.2', 80, weight=2, forwarding='route', upper_threshold=9,
                                            lower_threshold=3)
    assert result.after[key('tcp 10.0.0.1:80')].connections_of(('10.1.0.2', 80)) == (4, 2)


def test_drain_keeps_the_rest_of_the_entry():
    current = table(WEB.replace('10.1.0.2:80 -m -w 1', '10.1.0.2:80 -g -w 7 -x 9 -y 3'), {GONE: (1, 1)})
    (action,) = plan(table(WEB_ONE), current, parse_scope(SCOPE), now=NOW).actions
    assert action.server == RealServer('10.1.0.2', 80, weight=0, forwarding='route', upper_threshold=9,
                                       lower_threshold=3)


def test_draining_is_reported():
    current = table(WEB, {GONE: (3, 4)})
    result = plan(table(WEB_ONE), current, parse_scope(SCOPE), drain_state=drain({GONE: NOW - 10}), now=NOW)
    assert [entry.as_dict() for entry in result.draining] == [
        {'service': 'tcp 10.0.0.1:80', 'server': '10.1.0.2:80', 'since': NOW - 10, 'connections': 7}]


@pytest.mark.parametrize('actions, expected', [
    pytest.param(['add_service', 'add_server'], {'tcp 10.0.0.9:80': ['10.1.0.9:80']}, id='add'),
    pytest.param(['edit_service'], {'tcp 10.0.0.9:80': []}, id='edit-keeps-servers'),
    pytest.param(['delete_service'], {}, id='delete'),
])
def test_apply_to_table(actions, expected):
    service = VirtualService(ServiceKey.tcp_udp('tcp', '10.0.0.9', 80), 'rr')
    server = RealServer('10.1.0.9', 80)
    start = {} if actions[0] == 'add_service' else {service.key: service}
    steps = [model.Action(op, service.replace(real_servers=(server,)) if op == 'edit_service' else service,
                          server if op.endswith('server') else None) for op in actions]
    after = apply_to_table(start, steps)
    assert dict((str(k), [rs.endpoint for rs in v.real_servers]) for k, v in after.items()) == expected


def _big_table(services, servers, weight=1):
    result = {}
    for index in range(services):
        address = '10.%d.%d.%d' % (96 + index // 65536, index // 256 % 256, index % 256)
        service_key = ServiceKey.tcp_udp('tcp', address, 80)
        result[service_key] = VirtualService(service_key, 'rr', real_servers=tuple(
            RealServer('10.244.%d.%d' % (index % 250, rs), 8080, weight=weight) for rs in range(1, servers + 1)))
    return result


@pytest.mark.parametrize('current_weight, expected_actions', [
    pytest.param(None, 5000 * 11, id='empty-kernel-full-add'),
    pytest.param(1, 0, id='no-op'),
    pytest.param(2, 5000 * 10, id='every-weight-edited'),
])
def test_5000_services_plan_at_scale(current_weight, expected_actions):
    # Correctness at benchmark size; the speed itself is measured by bench/, not asserted here.
    desired = _big_table(5000, 10)
    current = {} if current_weight is None else _big_table(5000, 10, weight=current_weight)
    result = plan(desired, current, parse_scope(['10.96.0.0/12']), now=NOW)
    assert len(result.actions) == expected_actions


NODE_PORTS = (ipaddress.ip_network('192.0.2.0/28'), 30000, 32767)


@pytest.mark.parametrize('service, ports, owned', [
    pytest.param('tcp 10.0.0.1:80', (), True, id='v4-in'),
    pytest.param('tcp 10.0.1.1:80', (), False, id='v4-out'),
    pytest.param('tcp 192.0.2.77:80', (), True, id='v4-single-address'),
    pytest.param('udp [fd00::1]:53', (), True, id='v6-in'),
    pytest.param('udp [fd00:0:0:1::1]:53', (), False, id='v6-out'),
    pytest.param('fwmark 1', (), True, id='mark-first'),
    pytest.param('fwmark 99 ipv6', (), True, id='mark-last-v6'),
    pytest.param('fwmark 100', (), False, id='mark-out'),
    pytest.param('tcp 192.0.2.3:30000', (NODE_PORTS,), True, id='nodeport-first'),
    pytest.param('udp 192.0.2.3:32767', (NODE_PORTS,), True, id='nodeport-last-any-protocol'),
    pytest.param('tcp 192.0.2.3:29999', (NODE_PORTS,), False, id='nodeport-below'),
    pytest.param('sctp 192.0.2.3:32768', (NODE_PORTS,), False, id='nodeport-above'),
    pytest.param('tcp 192.0.2.16:30000', (NODE_PORTS,), False, id='nodeport-other-address'),
    pytest.param('tcp [fd01::3]:30080', ((ipaddress.ip_network('fd01::/64'), 30000, 32767),), True,
                 id='nodeport-v6'),
    pytest.param('tcp [::c000:203]:30080', (NODE_PORTS,), False, id='nodeport-v6-same-integer-not-v4'),
])
def test_scope_test(service, ports, owned):
    scope = parse_scope(SCOPE + ['192.0.2.77'])
    scope = Scope(networks=scope.networks, fwmarks=scope.fwmarks, ports=ports)
    test = model.ScopeTest(scope)
    assert test(key(service)) is owned
    assert test(key(service)) is owned, 'the memoised answer is the first one'
    assert scope.contains(key(service)) is owned
    assert scope.test()(key(service)) is owned


def test_scope_test_is_one_memo_per_scope(monkeypatch):
    """Validation, the engine's input check and the planner ask the same keys: the
    scope's one memoised test answers each key once for all of them, and the cache
    is no part of the scope's identity."""
    scope = parse_scope(SCOPE)
    asked = []
    real = model.ScopeTest._test
    monkeypatch.setattr(model.ScopeTest, '_test', lambda self, found: asked.append(found) or real(self, found))
    keys = [key('tcp 10.0.0.1:80'), key('tcp 198.51.100.1:80')]
    for _run in range(3):
        assert [scope.contains(found) for found in keys] == [True, False]
    assert scope.test() is scope.test()
    assert asked == keys
    fresh = parse_scope(SCOPE)
    assert fresh == scope and hash(fresh) == hash(scope) and repr(fresh) == repr(scope)


def test_ports_alone_are_a_scope_of_ranges():
    assert Scope(ports=(NODE_PORTS,)) and Scope(ports=(NODE_PORTS,)).has_ranges
    assert not Scope(keys=frozenset([key('tcp 10.0.0.1:80')])).has_ranges
