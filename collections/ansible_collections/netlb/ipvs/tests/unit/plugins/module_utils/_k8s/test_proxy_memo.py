# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""proxy.sync(memo=): a node synced with a SyncMemo after every step of the scripted
event sequence ends exactly where a node synced whole every time ends (IPVS table,
packet rules, dummy addresses, state, translation, warnings), and a sync on a change
does only the work its change needs. A full resync (the watcher's, every interval)
forgets what the memo trusts about the host and keeps its pure caches: it undoes each
kind of drift and translates and renders nothing that did not change."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from kube_api import objects as o

from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import proxy
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.host import NodeError
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import SyncOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import MemoryStateStore
from ansible_collections.netlb.ipvs.plugins.module_utils._watch.table import RememberedTable
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.fakes import FakeBackend
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s import test_translate_cache as events
from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._k8s.test_proxy import FakeHost

OPTIONS = SyncOptions(proxy=events.OPTIONS, service_cidrs=(ipaddress.ip_network('10.96.0.0/12'),),
                      cluster_cidrs=(ipaddress.ip_network('10.244.0.0/16'),), force=True)


class Node(object):
    """One node's kernel, host and state; memo: synced with a SyncMemo (as the watcher)."""

    def __init__(self, memo):
        self.kernel = FakeBackend()
        self.backend = RememberedTable(self.kernel) if memo else self.kernel
        self.host = FakeHost()
        self.store = MemoryStateStore()
        self.memo = proxy.SyncMemo() if memo else None
        self.loads = []  # every table the rules were replaced with, the transition's included
        sync_rules = self.host.sync_rules

        def recorded(text, check_mode, before=None, normalised=None):
            result = sync_rules(text, check_mode, before=before, normalised=normalised)
            if result.changed:
                self.loads.append(result.after)
            return result

        self.host.sync_rules = recorded

    def sync(self, world, full=False):
        if full and self.memo is not None:  # as _watch/node.py NodeSync does at a resync
            self.backend.forget()
            self.memo.forget_host()
        options = dataclasses.replace(OPTIONS, proxy=world.options) if world.options != events.OPTIONS else OPTIONS
        return proxy.sync(world.store.snapshot('test'), self.host, self.backend, options, self.store,
                          node_name=o.NODE, now=1000.0, want_diff=False, memo=self.memo)

    def state(self):
        return (self.kernel.table, self.host.rules, self.loads, self.host.on_dummy, self.store.state, self.host.flows)


def rules_flushed_by_hand(world, nodes):
    """Someone flushed the table between two syncs, and this node's pod was replaced."""
    for node in nodes:
        node.host.rules = ''

    def edit(obj):
        assert obj['endpoints'][-1]['addresses'] == ['10.244.1.13']
        obj['endpoints'][-1] = o.endpoint('10.244.1.14')
    world.change('EndpointSlice', 'default', 'web-abcde', edit)


def test_a_memo_sync_ends_where_a_whole_sync_ends():
    world = events.World()
    watcher, whole = Node(memo=True), Node(memo=False)
    rule_changes = 0
    steps = events.STEPS[:4] + [(rules_flushed_by_hand, 1)] + events.STEPS[4:] + [(events.nothing, None)]
    for step, _made in steps:
        if step is rules_flushed_by_hand:
            step(world, (watcher, whole))
        else:
            step(world)
        full = step is events.nothing and _made is None  # the last: a full resync, whole again
        ours, theirs = watcher.sync(world, full=full), whole.sync(world)
        assert ours.translation == theirs.translation, step.__name__
        assert ours.warnings == theirs.warnings, step.__name__
        assert (ours.addresses_added, ours.addresses_removed, ours.rules_changed) == (
            theirs.addresses_added, theirs.addresses_removed, theirs.rules_changed), step.__name__
        assert watcher.state() == whole.state(), step.__name__
        rule_changes += theirs.rules_changed
    assert rule_changes >= 5 and len(watcher.kernel.table) >= 5  # the steps did change the node
    assert watcher.backend.reads == 2  # the first sync and the full resync; every other planned in memory


@pytest.fixture
def counted(monkeypatch):
    calls = {'render': 0, 'dummy': 0}
    render, sync_dummy = packet_rules.render_lines, FakeHost.sync_dummy

    def count_render(*args, **kwargs):
        calls['render'] += 1
        return render(*args, **kwargs)

    def count_dummy(self, *args):
        calls['dummy'] += 1
        return sync_dummy(self, *args)

    monkeypatch.setattr(packet_rules, 'render_lines', count_render)
    monkeypatch.setattr(FakeHost, 'sync_dummy', count_dummy)
    return calls


def test_an_endpoint_change_elsewhere_renders_and_binds_nothing(counted):
    world, node = events.World(), Node(memo=True)
    events.start(world)
    node.sync(world)
    node.sync(world)  # the dummy interface now holds the cluster IPs: the addresses are settled
    before = dict(counted)
    events.endpoint_not_ready(world)  # another node's endpoint: no packet rule depends on it
    result = node.sync(world)
    assert node.memo.translation.made == 1
    assert counted == before
    assert result.reconcile.changed and not result.rules_changed
    events.endpoint_on_this_node(world)  # this node's: the hairpin set changes
    result = node.sync(world)
    assert counted == dict(before, render=before['render'] + 1) and result.rules_changed
    events.service_added(world)  # a new cluster IP to bind
    node.sync(world)
    assert counted['dummy'] == before['dummy'] + 1


def test_without_a_memo_every_sync_renders_and_binds(counted):
    world, node = events.World(), Node(memo=False)
    events.start(world)
    node.sync(world)
    node.sync(world)
    events.endpoint_not_ready(world)
    node.sync(world)
    assert counted == {'render': 3, 'dummy': 3}


def ipvs_table_changed(node):
    """`ipvsadm` by hand: one virtual service deleted, another's real servers emptied."""
    first, second = sorted(node.kernel.table)[:2]
    del node.kernel.table[first]
    node.kernel.table[second] = dataclasses.replace(node.kernel.table[second], real_servers={})


def rules_flushed(node):
    node.host.rules = ''  # `nft flush ruleset`


def dummy_address_removed(node):
    node.host.on_dummy.discard(sorted(node.host.on_dummy)[0])  # `ip addr del ... dev kube-ipvs0`


# (drift, whether a sync on a change, trusting the memo and the remembered table, misses it)
DRIFTS = [
    pytest.param(ipvs_table_changed, True, id='ipvs-table-changed'),
    pytest.param(rules_flushed, False, id='rules-flushed'),  # every sync reads the rules
    pytest.param(dummy_address_removed, True, id='dummy-address-removed'),
]


def settled(world):
    """A node synced twice with a memo (the dummy interface then holds the cluster IPs:
    the node's addresses, the translation's context, are settled), and its twin synced
    whole, where the memo node must end."""
    node, whole = Node(memo=True), Node(memo=False)
    for _sync in range(2):
        node.sync(world)
        whole.sync(world)
    assert node.state() == whole.state()
    return node, whole


def host_of(node):
    """A copy of what drift changes: the kernel table, the rules, the dummy addresses."""
    return dict(node.kernel.table), node.host.rules, frozenset(node.host.on_dummy)


@pytest.mark.parametrize('drift, missed_on_a_change', DRIFTS)
def test_a_resync_undoes_drift_with_the_pure_caches_kept(counted, drift, missed_on_a_change):
    world = events.World()
    events.start(world)
    node, whole = settled(world)
    want = host_of(node)
    drift(node)
    drifted = host_of(node)
    assert drifted != want
    if missed_on_a_change:
        node.sync(world)  # a sync on a change trusts what it kept: the drift stays
        assert host_of(node) == drifted
    before, reads = dict(counted), node.backend.reads
    result = node.sync(world, full=True)
    assert result.changed  # the resync found the drift and undid it
    assert host_of(node) == want
    assert node.store.state == whole.store.state
    assert node.backend.reads == reads + 1  # the kernel read again
    # What it cost: no Service translated again, no rules rendered again.
    assert (node.memo.translation.made, node.memo.translation.reused) == (0, len(world.store.objects['Service']))
    assert counted['render'] == before['render']
    assert node.sync(world, full=True).changed is False  # and converged


def test_a_resync_after_a_change_reaches_the_whole_sync_table(counted):
    world = events.World()
    events.start(world)
    node, whole = settled(world)
    for step in (events.endpoint_on_this_node, events.service_added, events.endpoint_not_ready):
        step(world)
        renders = counted['render']
        node.sync(world, full=True)
        assert counted['render'] <= renders + 1, step.__name__  # once at most, for the new inputs
        assert node.memo.translation.made <= 2, step.__name__  # the changed Service(s), not all
        whole.sync(world)
        assert host_of(node) == host_of(whole), step.__name__
        assert node.store.state == whole.store.state and node.host.flows == whole.host.flows, step.__name__


def test_the_rules_are_listed_again_only_when_the_ruleset_generation_moved():
    world = events.World()
    events.start(world)
    node, _whole = settled(world)
    reads = node.host.rule_reads
    node.sync(world, full=True)
    node.sync(world)
    assert node.host.rule_reads == reads  # no commit since the last listing: it is reused
    node.host.generation += 1  # a commit to another table (iptables-nft, another tool)
    node.sync(world, full=True)
    assert node.host.rule_reads == reads + 1
    node.host.generation = None  # the generation cannot be told: listed every time
    node.sync(world, full=True)
    node.sync(world, full=True)
    assert node.host.rule_reads == reads + 3
    node.memo.forget()  # after a failure
    node.host.generation = 7
    node.sync(world)
    assert node.host.rule_reads == reads + 4


def test_rules_a_sync_loaded_are_not_listed_again_unless_someone_else_committed():
    world = events.World()
    events.start(world)
    node, _whole = settled(world)
    events.endpoint_on_this_node(world)  # the hairpin set changes: the sync loads new rules
    assert node.sync(world).rules_changed
    reads = node.host.rule_reads
    node.sync(world, full=True)
    assert node.host.rule_reads == reads  # the generation moved by our own load only
    sync_rules = node.host.sync_rules

    def and_another_tool(*args, **kwargs):  # another commit lands between the listing and ours
        node.host.generation += 1
        return sync_rules(*args, **kwargs)

    node.host.sync_rules = and_another_tool
    world.change('EndpointSlice', 'default', 'web-abcde',
                 lambda obj: obj['endpoints'].append(o.endpoint('10.244.1.14')))  # another local endpoint
    assert node.sync(world).rules_changed
    node.host.sync_rules = sync_rules
    node.sync(world, full=True)
    assert node.host.rule_reads == reads + 1
    node.host.rules = ''  # and after our own load, `nft flush ruleset`: seen, listed, put back
    assert node.sync(world, full=True).rules_changed and node.host.rule_reads == reads + 2


def test_forget_after_a_failure_translates_everything_again():
    """The pair of the resync's cost fact: the whole forget() does make every piece again."""
    world = events.World()
    events.start(world)
    node, _whole = settled(world)
    node.memo.forget()
    node.sync(world)
    assert node.memo.translation.made == len(world.store.objects['Service']) > 1


def test_a_failed_sync_forgets_the_memo():
    world, node = events.World(), Node(memo=True)
    events.start(world)
    node.sync(world)
    assert node.memo.rules is not None and node.memo.translation.entries
    node.host.bad_rules = True
    events.endpoint_on_this_node(world)  # new rules: nft checks them, and refuses
    with pytest.raises(NodeError, match='nft refuses'):
        node.sync(world)
    assert node.memo.rules is None and node.memo.dummy is None and not node.memo.translation.entries


def test_a_memo_is_for_real_runs_only():
    world = events.World()
    events.start(world)
    with pytest.raises(ValueError, match='real runs only'):
        proxy.sync(world.store.snapshot('test'), FakeHost(), FakeBackend(check_mode=True), OPTIONS,
                   MemoryStateStore(), node_name=o.NODE, memo=proxy.SyncMemo())
