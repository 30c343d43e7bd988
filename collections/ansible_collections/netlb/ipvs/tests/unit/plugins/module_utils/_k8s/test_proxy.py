# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""proxy.sync(): the whole sequence on a node double and an in-memory kernel table -
scope and ownership, the delete guard, kube-proxy, check mode, state, convergence."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import re
import time

import pytest

from kube_api import objects

from ansible_collections.netlb.ipvs.plugins.module_utils import _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import RefusedError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy, proxy_guards
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import ProxyOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import dummy, packet_rules_nft, packet_rules_text
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.conntrack import Flow
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import NodeError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import SyncOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import (
    MemoryStateStore,
    ProxyState,
    StateError,
    StateStore,
    dumps,
    loads,
)
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend, key, table
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s import snapshots

NODE_IP = '192.168.10.11'
OPTIONS = SyncOptions(service_cidrs=(ipaddress.ip_network('10.96.0.0/12'),),
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
    planning functions of the edges (dummy.plan, packet_rules_text.normalise); flows cleared
    are kept in flows, the kernel's schedulers are schedulers (None: cannot be told)."""

    def __init__(self, kube_proxy=None, bad_rules=False, on_dummy=(), schedulers=None):
        self.kube_proxy = kube_proxy
        self.bad_rules = bad_rules
        self.offered = schedulers  # the kernel's schedulers; None: cannot be told
        self.on_dummy = set(on_dummy)
        self.generation = 0  # the ruleset's, raised by every change as the kernel's; None: unknown
        self.rules = ''
        self.rule_reads = 0  # read_rules() calls
        self.checks = 0  # nft -c runs
        self.flows = []
        self.writes = 0
        self.held = []  # each place() of the scheduler hold: the service names
        self.check_normalised = True  # sync_rules checks the caller's normalised text (the bench trusts it)
        self.address_forgets = 0  # forget_addresses() calls: a long-running caller's resyncs

    def forget_addresses(self):
        self.address_forgets += 1

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

    @property
    def rules(self):
        return self._rules

    @rules.setter
    def rules(self, text):  # any change, the module's or by hand: a new generation
        self._rules = text
        if self.generation is not None:
            self.generation += 1

    def rules_generation(self):
        return None if self.generation is None else ['boot', self.generation]

    def read_rules(self):
        self.rule_reads += 1
        return self.rules

    def sync_rules(self, text, check_mode, before=None, normalised=None):
        assert before is None or before == self.rules
        if normalised is None or self.check_normalised:
            assert normalised in (None, packet_rules_text.normalise(text))  # the caller's shortcut holds
            normalised = packet_rules_text.normalise(text)
        before, after = self.rules, normalised
        if before != after and not check_mode:
            self.rules = after
            self.writes += 1
        return packet_rules_nft.ApplyResult(before != after, before, after)

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

    def clear_udp_flows(self, flows, check_mode):
        flows = list(flows)
        if not check_mode:
            self.flows.extend(flows)
        return flows

    def schedulers(self):
        return self.offered


def cluster(*extra, web_endpoints=('10.244.1.11', '10.244.1.12')):
    """web (ClusterIP), web-np (NodePort 30080), dns (UDP 53), plus extra objects."""
    return snapshots.snapshot([
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
    options = dataclasses.replace(OPTIONS, proxy=ProxyOptions(external_ips_allowed_cidrs=('198.51.100.0/24',)))
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(external, external_slice), backend, host, store, options)
    assert key('tcp 198.51.100.7:80') in store.state.services and '198.51.100.7' in host.on_dummy
    result = run(cluster(), backend, host, store, options)
    assert key('tcp 198.51.100.7:80') not in backend.table
    assert '198.51.100.7' not in host.on_dummy and '198.51.100.7' in result.addresses_removed
    assert key('tcp 192.0.2.1:80') in backend.table


def test_an_empty_answer_is_refused_and_changes_nothing():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    before = (dict(backend.table), set(host.on_dummy), host.rules, store.state)
    with pytest.raises(RefusedError) as caught:
        run(snapshots.snapshot([]), backend, host, store)
    assert 'refusing to delete 4 of the 4' in str(caught.value)
    assert (backend.table, host.on_dummy, host.rules, store.state) == before
    forced = run(snapshots.snapshot([]), backend, host, store, options=SyncOptions(
        service_cidrs=OPTIONS.service_cidrs, force=True))
    assert forced.summary()['actions'] == {'delete_service': 4}
    assert host.on_dummy == set() and key('tcp 192.0.2.1:80') in backend.table


@pytest.mark.parametrize('ratio, refused', [(0.5, True), (0.75, False)])
def test_max_delete_ratio(ratio, refused):
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    smaller = snapshots.snapshot(cluster().services[:1] + cluster().endpoint_slices[:1])  # 1 of 4 virtual services left
    options = SyncOptions(service_cidrs=OPTIONS.service_cidrs, max_delete_ratio=ratio)
    if refused:
        with pytest.raises(RefusedError):
            run(smaller, backend, host, store, options)
        assert len(backend.table) == 4
    else:
        run(smaller, backend, host, store, options)
        assert len(backend.table) == 1


def test_kube_proxy_in_ipvs_mode_is_refused_unless_allowed():
    backend, store = FakeBackend(), MemoryStateStore()
    with pytest.raises(proxy_guards.KubeProxyRunningError) as caught:
        run(cluster(), backend, FakeHost(kube_proxy='pid 812, mode ipvs (metrics)'), store)
    assert 'pid 812' in str(caught.value) and backend.table == {} and store.saves == 0
    options = SyncOptions(service_cidrs=OPTIONS.service_cidrs, allow_kube_proxy=True)
    assert run(cluster(), backend, FakeHost(kube_proxy='pid 812'), store, options).changed


def test_rules_nft_refuses_fail_before_anything_changed():
    backend, store = FakeBackend(), MemoryStateStore()
    with pytest.raises(NodeError):
        run(cluster(), backend, FakeHost(bad_rules=True), store)
    assert backend.table == {} and backend.applied == [] and store.saves == 0


def test_check_mode_plans_what_a_real_run_does_and_writes_nothing():
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    saves = store.saves
    changed = cluster(web_endpoints=('10.244.1.11', '10.244.1.13'))
    checking = FakeBackend(dict(backend.table), check_mode=True)
    predicted = run(changed, checking, host, store)
    assert checking.table == backend.table and store.saves == saves
    real = run(changed, backend, host, store)
    assert predicted.reconcile.actions == real.reconcile.actions and predicted.diff == real.diff


def test_a_udp_real_server_that_goes_has_its_flows_cleared():
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    del host.flows[:]  # the new DNS service's (it had no endpoint before)
    fewer = cluster()
    fewer.endpoint_slices[-1]['endpoints'] = fewer.endpoint_slices[-1]['endpoints'][:1]
    result = run(fewer, backend, host, store)
    assert [flow.as_dict() for flow in result.udp_flows] == [{'service': '10.96.0.10:53', 'server': '10.244.2.22:53'}]
    assert host.flows == list(result.udp_flows)


def test_a_udp_service_whose_endpoints_go_from_none_to_some_has_its_flows_cleared():
    """kube-proxy's rule: a client that sent while nothing served VIP:port holds an entry
    from then; every entry to VIP:port goes, queued in the state before the IPVS write and
    cleared after it (the server is in place when the client's next packet comes)."""
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    none = cluster()
    none.endpoint_slices[-1]['endpoints'] = []
    run(none, backend, host, store)
    assert backend.table[key('udp 10.96.0.10:53')].real_servers == ()
    del host.flows[:]
    saved, applied = [], []
    save, apply = store.save, backend.apply

    def recording_save(state):
        saved.append((len(applied), state.udp_flows))
        return save(state)

    def recording_apply(actions):
        applied.append(list(actions))
        return apply(actions)

    store.save, backend.apply = recording_save, recording_apply
    result = run(cluster(), backend, host, store)
    whole = {'service': '10.96.0.10:53'}
    assert [flow.as_dict() for flow in result.udp_flows] == [whole]
    assert host.flows == list(result.udp_flows)
    assert [flow.as_dict() for flow in saved[0][1]] == [whole] and saved[0][0] == 0, 'not queued before IPVS'
    assert not store.state.udp_flows
    again = run(cluster(), backend, host, store)
    assert not again.udp_flows, 'an unchanged service has nothing stale'


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


# ---------------------------------------------------------------- schedulers the kernel lacks

KERNEL_SCHEDULERS = frozenset(['rr', 'wrr', 'lc', 'wlc', 'sh'])  # a kernel before 5.12: no twos


def refusing_kernel(offered):
    """What the kernel says to a service whose scheduler module it cannot find."""
    return lambda action: 'No such file or directory' if action.service.scheduler not in offered else None


def twos_service():
    return [objects.service('fancy', cluster_ip='10.96.0.50', annotations={'ipvs.netlb.io/scheduler': 'twos'}),
            objects.endpoint_slice('fancy', [objects.endpoint('10.244.1.50')])]


def test_a_scheduler_the_kernel_lacks_falls_back_and_the_rest_is_applied():
    backend = FakeBackend(table(FOREIGN), refuse=refusing_kernel(KERNEL_SCHEDULERS))
    host, store = FakeHost(schedulers=KERNEL_SCHEDULERS), MemoryStateStore()
    result = run(cluster(*twos_service()), backend, host, store)
    assert backend.table[key('tcp 10.96.0.50:80')].scheduler == 'rr'
    assert len(result.reconcile.after) == 5  # the other services too
    assert result.warnings == ['Service default/fancy: scheduler twos: the kernel lacks it (this kernel offers rr, '
                               'wrr, lc, wlc, sh); 1 virtual service(s) use rr instead']
    assert not run(cluster(*twos_service()), backend, host, store).changed


def test_a_scheduler_option_the_kernel_lacks_is_one_warning():
    options = dataclasses.replace(OPTIONS, proxy=dataclasses.replace(OPTIONS.proxy, scheduler='mh'))
    backend = FakeBackend(refuse=refusing_kernel(KERNEL_SCHEDULERS))
    result = run(cluster(*twos_service()), backend, FakeHost(schedulers=KERNEL_SCHEDULERS), MemoryStateStore(),
                 options)
    assert set(service.scheduler for service in backend.table.values()) == {'rr'}
    assert [warning.split(':')[0] for warning in result.warnings] == ['scheduler', 'Service default/fancy']
    assert result.warnings[0].startswith('scheduler: mh: the kernel lacks it (this kernel offers rr, wrr, lc, wlc, sh)')
    assert result.warnings[0].endswith('4 virtual service(s) use rr instead')


def test_a_fallen_back_service_gets_the_flags_of_its_new_scheduler():
    """mh-port on an rr service would be the kernel's flag-2 once read back: a diff on
    every run. The fallback takes the flags its own scheduler reads."""
    options = dataclasses.replace(OPTIONS, proxy=dataclasses.replace(OPTIONS.proxy, scheduler='sh',
                                                                     scheduler_flags=('mh-port', 'sh-port')))
    backend = FakeBackend(refuse=refusing_kernel(KERNEL_SCHEDULERS))
    run(cluster(*twos_service()), backend, FakeHost(schedulers=KERNEL_SCHEDULERS), MemoryStateStore(), options)
    assert set((service.scheduler, service.scheduler_flags) for service in backend.table.values()) == {
        ('sh', ('sh-port',))}
    options = dataclasses.replace(OPTIONS, proxy=dataclasses.replace(OPTIONS.proxy, scheduler='mh'))
    backend = FakeBackend(refuse=refusing_kernel(KERNEL_SCHEDULERS))
    run(cluster(), backend, FakeHost(schedulers=KERNEL_SCHEDULERS), MemoryStateStore(), options)
    assert set((service.scheduler, service.scheduler_flags) for service in backend.table.values()) == {('rr', ())}


def test_a_translation_that_stopped_early_changes_nothing(monkeypatch):
    """A fault of the translator leaves a partial table: the run is refused before any
    write, where applying it would have deleted the services it did not reach."""
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(cluster(), backend, host, store)
    before, writes, saves, state = dict(backend.table), host.writes, store.saves, store.state

    def broken(*_args):
        raise RuntimeError('a bug')

    monkeypatch.setattr(proxy.translator, 'option_networks', broken)
    with pytest.raises(proxy.translator.IncompleteTranslationError,
                       match=r'stopped early \(RuntimeError: a bug\); nothing was changed'):
        run(cluster(), backend, host, store)
    assert backend.table == before and host.writes == writes and store.saves == saves and store.state == state


def test_schedulers_unknown_are_left_to_the_kernel():
    result = run(cluster(*twos_service()), FakeBackend(), FakeHost(schedulers=None), MemoryStateStore())
    assert result.reconcile.after[key('tcp 10.96.0.50:80')].scheduler == 'twos' and not result.warnings


# ---------------------------------------------------------------- the delete guard on real servers

def services_with(endpoints):
    """A Service per name (cluster IPs 10.96.1.1...) with its endpoints' addresses."""
    objs = []
    for index, (name, addresses) in enumerate(sorted(endpoints.items())):
        objs.append(objects.service(name, cluster_ip='10.96.1.%d' % (index + 1)))
        objs.append(objects.endpoint_slice(name, [objects.endpoint(address) for address in addresses]))
    return snapshots.snapshot(objs)


A, B, C, D, E = ('10.244.1.%d' % number for number in range(1, 6))


@pytest.mark.parametrize('before, after, ratio, force, refused', [
    pytest.param({'web': [A]}, {'web': [B]}, 0.5, False, None, id='one-endpoint-replaced'),
    pytest.param({'web': [A, B, C]}, {'web': [C, D, E]}, 0.5, False, None, id='rollout'),
    pytest.param({'web': [A, B, C, D]}, {'web': [A, B]}, 0.5, False, None, id='half-scaled-down'),
    pytest.param({'web': [A, B, C, D]}, {'web': [A]}, 0.5, False, (3, 4), id='most-scaled-down'),
    pytest.param({'web': [A, B, C, D]}, {'web': [A]}, 0.75, False, None, id='most-scaled-down-ratio-0.75'),
    pytest.param({'web': [A], 'api': [B], 'dns': [C, D]}, {'web': [], 'api': [B], 'dns': [C, D]}, 0.5, False,
                 None, id='one-service-to-zero-among-more'),
    pytest.param({'web': [A, B], 'api': [C]}, {'web': [], 'api': []}, 0.5, False, (3, 3), id='empty-slices'),
    pytest.param({'web': [A]}, {'web': []}, 1.0, False, (1, 1), id='all-even-at-ratio-1'),
    pytest.param({'web': [A, B], 'api': [C]}, {'web': [], 'api': []}, 0.5, True, None, id='empty-slices-forced'),
    pytest.param({'web': [A, B]}, {'web': [A]}, 0.0, False, (1, 2), id='ratio-0-refuses-any-loss'),
])
def test_real_server_guard(before, after, ratio, force, refused):
    """Of the serving real servers of the virtual services that stay, what goes unreplaced
    counts: above max_delete_ratio, or all of them, is refused unless force."""
    backend, host, store = FakeBackend(), FakeHost(), MemoryStateStore()
    run(services_with(before), backend, host, store)
    kernel = dict(backend.table)
    options = dataclasses.replace(OPTIONS, max_delete_ratio=ratio, force=force)
    if refused:
        with pytest.raises(RefusedError) as caught:
            run(services_with(after), backend, host, store, options)
        assert str(caught.value).startswith('refusing to take %d of the %d serving real servers' % refused)
        assert 'tcp 10.96.1.' in str(caught.value) and 'nothing was changed' in str(caught.value)
        assert backend.table == kernel
    else:
        run(services_with(after), backend, host, store, options)
        assert len(backend.table) == len(kernel)
        assert sorted(rs.address for service in backend.table.values() for rs in service.real_servers) == sorted(
            address for addresses in after.values() for address in addresses)


# ---------------------------------------------------------------- a run that stops half-way

class Killed(BaseException):
    """The process ending at a step (kill -9, an Ansible timeout): nothing after it runs,
    no except clause sees it."""


def stop_before(stop, backend, host, store):
    """Make the run stop before its write number stop (0: the first), a write being a
    call of any of the methods below; returns the names of the calls made."""
    calls = []
    for obj, name in ((store, 'save'), (host, 'sync_rules'), (backend, 'apply'), (host, 'sync_dummy'),
                      (host, 'clear_udp_flows')):
        def step(*args, _method=getattr(obj, name), _name=name, **kwargs):
            if len(calls) == stop:
                raise Killed(_name)
            calls.append(_name)
            return _method(*args, **kwargs)
        setattr(obj, name, step)
    return calls


LB_OLD = [objects.service('lb-old', cluster_ip='10.96.0.40', type='LoadBalancer', lb_ingress=[{'ip': '198.51.100.40'}],
                          source_ranges=['203.0.113.0/24']),
          objects.endpoint_slice('lb-old', [objects.endpoint('10.244.1.40')])]
LB_NEW = [objects.service('lb-new', cluster_ip='10.96.0.41', type='LoadBalancer', lb_ingress=[{'ip': '198.51.100.41'}],
                          source_ranges=['192.0.2.0/24']),
          objects.endpoint_slice('lb-new', [objects.endpoint('10.244.1.41')])]
DNS_GONE = Flow(4, '10.96.0.10', 53, '10.244.2.22', 53)


def old_cluster():
    return cluster(*LB_OLD)


def new_cluster():
    """lb-old gone, lb-new come, and one of the two DNS pods gone (a UDP flow to clear)."""
    snapshot = cluster(*LB_NEW)
    snapshot.endpoint_slices[2]['endpoints'] = snapshot.endpoint_slices[2]['endpoints'][:1]
    return snapshot


def converged(snapshot):
    backend, host, store = FakeBackend(table(FOREIGN)), FakeHost(), MemoryStateStore()
    run(snapshot, backend, host, store)
    return backend, host, store


def view(backend, host, store):
    return backend.table, host.on_dummy, host.rules, store.state


@pytest.mark.parametrize('then', [pytest.param(old_cluster, id='back-to-old'), pytest.param(new_cluster, id='new')])
def test_a_run_killed_at_any_step_leaves_nothing_the_next_run_does_not_converge(then):
    """Killed between any two writes of the run old -> new, one normal run to then leaves
    exactly the table, addresses, rules and state a node converged on then holds; back to
    old, what the killed run created (lb-new's virtual services and address) goes; and
    the UDP flow the killed run left stale is cleared, by it or by the next run."""
    want = view(*converged(then()))
    stops = 0
    while True:
        backend, host, store = converged(old_cluster())
        calls = stop_before(stops, backend, host, store)
        try:
            run(new_cluster(), backend, host, store)
            break  # a whole run: every write point was tried
        except Killed:
            pass
        del backend.apply, host.sync_rules, host.sync_dummy, host.clear_udp_flows, store.save  # the next process
        run(then(), backend, host, store)
        assert view(backend, host, store) == want, 'killed before write %d (after %s)' % (stops, calls)
        if 'apply' in calls:
            assert DNS_GONE in host.flows, 'killed after %s' % calls
        stops += 1
    # The order at the top of proxy.py: record, rules first, IPVS, addresses, rules final, state, flows, state.
    assert calls == ['save', 'sync_rules', 'apply', 'sync_dummy', 'sync_rules', 'save', 'clear_udp_flows', 'save']


def test_the_state_records_before_the_table_changes():
    backend, host, store = converged(old_cluster())
    recorded = []
    backend.refuse = lambda action: recorded.append(store.state) or None
    run(new_cluster(), backend, host, store)
    assert {key('tcp 198.51.100.40:80'), key('tcp 198.51.100.41:80')} <= recorded[0].services
    assert {'198.51.100.40', '198.51.100.41'} <= recorded[0].addresses and DNS_GONE in recorded[0].udp_flows
    assert key('tcp 198.51.100.40:80') not in store.state.services and not store.state.udp_flows


def test_load_balancer_rules_hold_while_its_virtual_service_exists():
    """A new LB address is restricted before IPVS serves it and before it is bound; a gone
    one stays restricted until its virtual service and its address went."""
    backend, host, store = converged(old_cluster())
    seen = []
    backend.refuse = lambda action: seen.append((action.op, str(action.service.key), host.rules)) or None
    sync_dummy = host.sync_dummy

    def dummy_step(*args):
        seen.append(('dummy', '', host.rules))
        return sync_dummy(*args)

    host.sync_dummy = dummy_step
    run(new_cluster(), backend, host, store)
    new_range, old_range = '198.51.100.41 . tcp . 80 . 192.0.2.0/24', '198.51.100.40 . tcp . 80 . 203.0.113.0/24'
    steps = dict(((op, name), rules) for op, name, rules in seen)
    assert new_range in steps[('add_service', 'tcp 198.51.100.41:80')]
    assert old_range in steps[('delete_service', 'tcp 198.51.100.40:80')]
    assert new_range in steps[('dummy', '')] and old_range in steps[('dummy', '')]
    assert new_range in host.rules and old_range not in host.rules and '198.51.100.40' not in host.rules


# ---------------------------------------------------------------- the state lock and the state file

class LockingStore(MemoryStateStore):
    """Says whether its lock is held."""

    held = False

    @contextlib.contextmanager
    def lock(self, what=None, wait=None):
        self.held = True
        try:
            yield
        finally:
            self.held = False


def test_the_rules_are_read_inside_the_state_lock():
    store, host = LockingStore(), FakeHost()
    reads = []
    read_rules = host.read_rules
    host.read_rules = lambda: reads.append(store.held) or read_rules()
    run(cluster(), FakeBackend(), host, store)
    assert reads == [True]


def test_the_state_lock_waits_then_names_its_holder(tmp_path):
    store = StateStore(str(tmp_path / 'state.json'))
    started = time.monotonic()
    with _run_lock.held('netlb-ipvs reconcile (timer)', path=store.path + '.lock'):
        with pytest.raises(_run_lock.LockBusy) as busy:
            with store.lock(wait=0.3):
                pass
    assert time.monotonic() - started < 5
    assert str(busy.value).startswith('another run holds %s.lock: pid %d, netlb-ipvs reconcile (timer), since '
                                      % (store.path, os.getpid()))
    with store.lock(wait=0):
        store.save(ProxyState())  # free again


V1 = '{"addresses": ["10.96.0.10"], "services": [["udp", "10.96.0.10", 53]], "version": 1}\n'


@pytest.mark.parametrize('text, problem', [
    pytest.param(V1, None, id='version-1-no-flows'),
    pytest.param(V1.replace('"version": 1', '"udp_flows": [[4, "10.96.0.10", 53, "10.244.2.22", 53]], "version": 2'),
                 None, id='version-2'),
    pytest.param(V1.replace('"version": 1', '"version": 2'), "'udp_flows'", id='version-2-without-flows'),
    pytest.param(V1.replace('"version": 1', '"udp_flows": [[6, "10.96.0.10", 53, "", 0]], "version": 2'),
                 'mixes address families', id='flow-family'),
    pytest.param(V1.replace('"version": 1', '"udp_flows": [[4, "10.96.0.10", 70000, "", 0]], "version": 2'),
                 'port out of range', id='flow-port'),
    pytest.param(V1.replace('"version": 1', '"udp_flows": [[4, "10.96.0.10", 53]], "version": 2'),
                 'not enough values', id='flow-short'),
    pytest.param(V1.replace('"version": 1', '"version": 3'), 'unknown version 3', id='version-3'),
])
def test_state_file_versions(text, problem):
    if problem:
        with pytest.raises(StateError, match=problem):
            loads(text)
        return
    state = loads(text)
    assert state.services == frozenset([key('udp 10.96.0.10:53')]) and state.addresses == frozenset(['10.96.0.10'])
    assert loads(dumps(state)) == state and '"version": 2' in dumps(state)
    assert state.udp_flows == (frozenset([Flow(4, '10.96.0.10', 53, '10.244.2.22', 53)]) if '"version": 2' in text
                               else frozenset())
