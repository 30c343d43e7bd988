# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""proxy.sync(): the whole sequence on a node double and an in-memory kernel table -
scope and ownership, the delete guard, kube-proxy, check mode, state, convergence."""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import RefusedError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import conntrack, dummy, packet_rules
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import NodeError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import MemoryStateStore, ProxyState
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, key, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s import objects

NODE_IP = '192.168.10.11'
OPTIONS = proxy.SyncOptions(service_cidrs=(ipaddress.ip_network('10.96.0.0/12'),),
                            cluster_cidrs=(ipaddress.ip_network('10.244.0.0/16'),))
# Other owners of the same kernel table: a keepalived VIP, a firewall-mark service, and
# a port outside the NodePort range on the node's own address.
FOREIGN = '''
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.9.0.1:80 -m -w 1
-A -f 7 -s rr
-a -f 7 -r 10.9.0.2:0 -g -w 1
-A -t 192.168.10.11:8443 -s rr
-a -t 192.168.10.11:8443 -r 10.9.0.3:8443 -m -w 1
'''


class FakeHost(object):
    """The node: addresses, a dummy interface and an nft table in memory, with the real
    planning functions of the edges (dummy.plan, conntrack.flows, packet_rules.normalise)."""

    def __init__(self, kube_proxy=None, bad_rules=False, on_dummy=()):
        self.kube_proxy = kube_proxy
        self.bad_rules = bad_rules
        self.on_dummy = set(on_dummy)
        self.rules = ''
        self.checks = 0  # nft -c runs
        self.flows = []
        self.writes = 0
        self.held = []  # each place() of the scheduler hold: the service names

    def addresses(self):
        return (('lo', '127.0.0.1'), ('eth0', NODE_IP)) + tuple(('kube-ipvs0', a) for a in sorted(self.on_dummy))

    def primary_addresses(self, dummy_interface):
        return (NODE_IP,)

    def kube_proxy_ipvs(self):
        return self.kube_proxy

    def check_rules(self, text):
        self.checks += 1
        if self.bad_rules:
            raise NodeError('checking the packet rules: nft refuses them')

    def sync_dummy(self, interface, desired, owned, check_mode):
        add, remove, owned_after = dummy.plan(self.on_dummy, desired, owned)
        if not check_mode and (add or remove):
            self.on_dummy = (self.on_dummy | set(add)) - set(remove)
            self.writes += 1
        return dummy.DummyResult(interface, False, add, remove, owned_after)

    def read_rules(self):
        return self.rules

    def sync_rules(self, text, check_mode, before=None):
        assert before is None or before == self.rules
        before, after = self.rules, packet_rules.normalise(text)
        if before != after and not check_mode:
            self.rules = after
            self.writes += 1
        return packet_rules.ApplyResult(before != after, before, after)

    def scheduler_hold(self):
        host = self

        class Hold(object):
            def check(self):
                pass

            def place(self, keys):
                host.held.append(sorted(str(key) for key in keys))

            def release(self):
                pass

        return Hold()

    def clear_udp_flows(self, actions, check_mode):
        flows = conntrack.flows(actions)
        if not check_mode:
            self.flows.extend(flows)
        return flows


def cluster(*extra, web_endpoints=('10.244.1.11', '10.244.1.12')):
    """web (ClusterIP), web-np (NodePort 30080), dns (UDP 53), plus extra objects."""
    return objects.snapshot([
        objects.service('web', cluster_ip='10.96.0.20'),
        objects.endpoint_slice('web', [objects.endpoint(a) for a in web_endpoints]),
        objects.service('web-np', cluster_ip='10.96.0.21', type='NodePort',
                        ports=[objects.service_port(80, node_port=30080)]),
        objects.endpoint_slice('web-np', [objects.endpoint(a) for a in web_endpoints]),
        objects.service('dns', cluster_ip='10.96.0.10', ports=[objects.service_port(53, protocol='UDP')]),
        objects.endpoint_slice('dns', [objects.endpoint('10.244.2.21'), objects.endpoint('10.244.2.22')],
                               ports=[objects.slice_port(53, protocol='UDP')]),
    ] + list(extra))


STEPS = ('node', 'translate', 'rules_check', 'dummy', 'rules_apply', 'udp_flows', 'diff', 'total')


def run(snapshot, backend, host, store, options=OPTIONS):
    return proxy.sync(snapshot, host, backend, options, store, node_name=objects.NODE, now=1000.0)


def foreign_text(backend):
    return save_format.render(dict((k, v) for k, v in backend.table.items() if str(k) in (
        'tcp 192.0.2.1:80', 'fwmark 7', 'tcp 192.168.10.11:8443')))


def test_first_sync_then_nothing_to_do():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    foreign = foreign_text(backend)
    first = run(cluster(), backend, host, store)
    assert first.changed
    assert sorted(str(k) for k in first.reconcile.after) == [
        'tcp 10.96.0.20:80', 'tcp 10.96.0.21:80', 'tcp 192.168.10.11:30080', 'udp 10.96.0.10:53']
    assert host.on_dummy == {'10.96.0.10', '10.96.0.20', '10.96.0.21'}  # never the NodePort address
    assert 'netlb_ipvs' in host.rules
    assert store.state.addresses == frozenset(host.on_dummy)
    assert first.summary()['services_seen'] == 3
    assert foreign_text(backend) == foreign  # other owners untouched
    writes = host.writes
    second = run(cluster(), backend, host, store)
    assert not second.changed and not second.reconcile.actions and host.writes == writes
    assert host.checks == 1  # the rules the node holds already are not checked again
    # Every step is timed (the benchmark reads these), the engine's under ipvs_.
    assert set(STEPS) <= set(second.timings) and 'ipvs_read' in second.timings
    # Without --diff no before/after texts are made.
    third = proxy.sync(cluster(), host, backend, OPTIONS, store, node_name=objects.NODE, now=1000.0, want_diff=False)
    assert third.diff is None and 'diff' not in third.timings and second.diff is not None


def test_rules_get_this_nodes_endpoints_and_addresses():
    """Hairpin pairs of the local endpoints only; the node itself let through the ranges
    of the LB whose range holds its address, from the LB address."""
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    lbs = [objects.service(name, cluster_ip=cluster_ip, type='LoadBalancer', lb_ingress=[{'ip': lb}],
                           ports=[objects.service_port(443, node_port=node_port)], source_ranges=[source_range])
           for name, cluster_ip, lb, node_port, source_range in (
               ('lb-in', '10.96.0.30', '198.51.100.1', 30443, '192.168.10.0/24'),
               ('lb-out', '10.96.0.31', '198.51.100.2', 30444, '203.0.113.0/24'))]
    remote = objects.endpoint_slice('web-np', [objects.endpoint('10.244.7.7', node='node-b')], name='web-np-b')
    run(cluster(remote, *lbs), backend, host, store)
    elements = [line.strip().rstrip(',') for line in host.rules.splitlines()]
    pairs = [element for element in elements if re.match(r'^[0-9.]+ \. [0-9.]+$', element)]
    assert pairs == ['10.244.1.11 . 10.244.1.11', '10.244.1.12 . 10.244.1.12', '10.244.2.21 . 10.244.2.21',
                     '10.244.2.22 . 10.244.2.22']  # not node-b's 10.244.7.7
    assert '198.51.100.1 . tcp . 443 . 198.51.100.1,' in host.rules
    assert '198.51.100.2 . tcp . 443 . 198.51.100.2' not in host.rules


def test_a_foreign_service_equal_to_a_wanted_one_is_adopted_without_a_change():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    # A node kube-proxy served: the same table, addresses on the dummy, no state of ours.
    fresh_host = FakeHost(on_dummy=host.on_dummy)
    adopted = run(cluster(), FakeBackend(dict(backend.table)), fresh_host, MemoryStateStore())
    assert adopted.reconcile.actions == ()


def test_stale_services_in_scope_go_foreign_ones_stay():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    backend.table.update(table('''
        -A -t 10.96.0.99:80 -s rr
        -A -t 192.168.10.11:31000 -s rr
    '''))
    foreign = foreign_text(backend)
    result = run(cluster(), backend, host, store)
    deleted = sorted(str(a.service.key) for a in result.reconcile.actions if a.op == 'delete_service')
    assert deleted == ['tcp 10.96.0.99:80', 'tcp 192.168.10.11:31000']
    assert foreign_text(backend) == foreign


def test_an_external_ip_it_created_is_removed_once_unwanted_and_only_then():
    external = objects.service('ext', cluster_ip='10.96.0.30', external_ips=['198.51.100.7'])
    external_slice = objects.endpoint_slice('ext', [objects.endpoint('10.244.1.30')])
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(external, external_slice), backend, host, store)
    assert key('tcp 198.51.100.7:80') in store.state.services and '198.51.100.7' in host.on_dummy
    result = run(cluster(), backend, host, store)
    assert key('tcp 198.51.100.7:80') not in backend.table
    assert '198.51.100.7' not in host.on_dummy and '198.51.100.7' in result.addresses_removed
    assert key('tcp 192.0.2.1:80') in backend.table


def test_an_empty_answer_is_refused_and_changes_nothing():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    before = (dict(backend.table), set(host.on_dummy), host.rules, store.state)
    with pytest.raises(RefusedError) as caught:
        run(objects.snapshot([]), backend, host, store)
    assert 'refusing to delete 4 of the 4' in str(caught.value)
    assert (backend.table, host.on_dummy, host.rules, store.state) == before
    forced = run(objects.snapshot([]), backend, host, store, options=proxy.SyncOptions(
        service_cidrs=OPTIONS.service_cidrs, force=True))
    assert forced.summary()['actions'] == {'delete_service': 4}
    assert host.on_dummy == set() and key('tcp 192.0.2.1:80') in backend.table


@pytest.mark.parametrize('ratio, refused', [(0.5, True), (0.75, False)])
def test_max_delete_ratio(ratio, refused):
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    smaller = objects.snapshot(cluster().services[:1] + cluster().endpoint_slices[:1])  # 1 of 4 virtual services left
    options = proxy.SyncOptions(service_cidrs=OPTIONS.service_cidrs, max_delete_ratio=ratio)
    if refused:
        with pytest.raises(RefusedError):
            run(smaller, backend, host, store, options)
        assert len(backend.table) == 4
    else:
        run(smaller, backend, host, store, options)
        assert len(backend.table) == 1


def test_kube_proxy_in_ipvs_mode_is_refused_unless_allowed():
    backend, store = FakeBackend(), MemoryStateStore()
    with pytest.raises(proxy.KubeProxyRunningError) as caught:
        run(cluster(), backend, FakeHost(kube_proxy='pid 812, mode ipvs (metrics)'), store)
    assert 'pid 812' in str(caught.value) and backend.table == {} and store.saves == 0
    options = proxy.SyncOptions(service_cidrs=OPTIONS.service_cidrs, allow_kube_proxy=True)
    assert run(cluster(), backend, FakeHost(kube_proxy='pid 812'), store, options).changed


def test_rules_nft_refuses_fail_before_anything_changed():
    backend, store = FakeBackend(), MemoryStateStore()
    with pytest.raises(NodeError):
        run(cluster(), backend, FakeHost(bad_rules=True), store)
    assert backend.table == {} and backend.applied == [] and store.saves == 0


def test_check_mode_plans_what_a_real_run_does_and_writes_nothing():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    changed = cluster(web_endpoints=('10.244.1.11', '10.244.1.13'))
    checking = FakeBackend(dict(backend.table), check_mode=True)
    predicted = run(changed, checking, host, store)
    assert checking.table == backend.table and store.saves == 1
    real = run(changed, backend, host, store)
    assert predicted.reconcile.actions == real.reconcile.actions and predicted.diff == real.diff


def test_a_udp_real_server_that_goes_has_its_flows_cleared():
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    fewer = cluster()
    fewer.endpoint_slices[-1]['endpoints'] = fewer.endpoint_slices[-1]['endpoints'][:1]
    result = run(fewer, backend, host, store)
    assert [flow.as_dict() for flow in result.udp_flows] == [{'service': '10.96.0.10:53', 'server': '10.244.2.22:53'}]
    assert host.flows == list(result.udp_flows)


def test_state_survives_a_store_round_trip(tmp_path):
    from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import StateStore, dumps, loads
    state = ProxyState(services=frozenset([key('tcp 198.51.100.7:80'), key('udp 10.96.0.10:53')]),
                       addresses=frozenset(['10.96.0.10', 'fd00::a']))
    assert loads(dumps(state)) == state
    store = StateStore(str(tmp_path / 'sub' / 'state.json'))
    assert store.load() == ProxyState()
    with store.lock():
        store.save(state)
    assert store.load() == state


def test_a_scheduler_change_is_held():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    assert host.held == []
    wrr = dataclasses.replace(OPTIONS, proxy=dataclasses.replace(OPTIONS.proxy, scheduler='wrr'))
    result = run(cluster(), backend, host, store, options=wrr)
    # UDP cannot be held; its service changes scheduler unheld, and the warning says so.
    assert host.held == [['tcp 10.96.0.20:80', 'tcp 10.96.0.21:80', 'tcp 192.168.10.11:30080']]
    assert [w for w in result.warnings if w.startswith('scheduler changed on 4 live service(s)')]
    assert 'were held' in result.warnings[-1] and 'UDP cannot be held' in result.warnings[-1]


def test_scheduler_hold_false_places_no_hold():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    unheld = dataclasses.replace(OPTIONS, proxy=dataclasses.replace(OPTIONS.proxy, scheduler='wrr'),
                                 scheduler_hold=False)
    result = run(cluster(), backend, host, store, options=unheld)
    assert host.held == []
    assert 'not held: no hold configured' in [w for w in result.warnings if w.startswith('scheduler changed')][0]
