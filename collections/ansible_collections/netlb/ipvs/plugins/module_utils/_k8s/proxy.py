# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One sync of a node from a snapshot of its cluster: translate, guard, then the IPVS
table (through the one engine), the dummy interface's addresses and the packet rules.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The same function serves the k8s_service_proxy module, a run on a timer and a
long-running watcher: no Ansible here. The node's effects go through a HostNode (real)
or a test double with the same methods, so the whole sequence is tested without root.

Order, and why:
1. Refuse when kube-proxy runs in IPVS mode on the node (two owners of one table fight).
2. Translate (pure). Render the packet rules and, unless the node holds them already,
   have the kernel check them, so a rule set nft would refuse fails the run before
   anything changed.
3. The IPVS table, within the proxy's scope: the service CIDRs, the NodePort range on
   the node's addresses, and what the state file says the proxy created. The guard sees
   the plan before anything is applied and refuses an answer that would delete more than
   max_delete_ratio of the managed services, or all of them (an empty or truncated
   answer is far more often a fault than an intent).
4. Dummy-interface addresses: the wanted ones bound, the ones the proxy bound before and
   no longer wants removed (an operator's address is never touched).
5. Packet rules replaced in one transaction.
6. Stale UDP conntrack entries of UDP real servers that went (kubernetes#71514).
7. The state saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    DELETE_SERVICE,
    IpvsError,
    RefusedError,
    Scope,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation import service_to_params
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate as translator
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import NodeContext, ProxyOptions
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import packet_rules
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import ProxyState

ZONE_LABEL = 'topology.kubernetes.io/zone'
DUMMY_HEADER = 'addresses on %s (bound by netlb.ipvs)'
RULES_HEADER = 'nft list table %s'


class KubeProxyRunningError(IpvsError):
    """kube-proxy manages IPVS on this node; two owners of one table fight."""


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """Everything a sync needs besides the cluster and the node (validated before).

    service_cidrs: ip_network objects; node_port_range: (first, last); masquerade:
    'external', 'all' or 'none'; cluster_cidrs: ip_network objects (sources inside are
    pods); max_delete_ratio: 0..1; force: skip the delete guard; allow_kube_proxy: run
    beside a kube-proxy in IPVS mode; drain_timeout: seconds (0: drain until idle);
    scheduler_hold: hold new connections while a scheduler is swapped (host.scheduler_hold()).
    """

    proxy: ProxyOptions = ProxyOptions()
    service_cidrs: tuple = ()
    node_port_range: tuple = (30000, 32767)
    masquerade: str = 'external'
    cluster_cidrs: tuple = ()
    max_delete_ratio: float = 0.5
    force: bool = False
    allow_kube_proxy: bool = False
    drain_timeout: int = 0
    scheduler_hold: bool = True


@dataclasses.dataclass
class SyncResult:
    """What a sync did (in check mode: would do)."""

    translation: object
    reconcile: object = None  # engine.Result
    addresses_added: tuple = ()
    addresses_removed: tuple = ()
    rules_changed: bool = False
    udp_flows: tuple = ()  # conntrack Flows of UDP real servers that went, cleared
    diff: dict = None
    timings: dict = dataclasses.field(default_factory=dict)
    warnings: list = dataclasses.field(default_factory=list)
    fingerprint: str = ''  # of the cluster objects the sync was made from (pipeline.fingerprint)

    @property
    def changed(self):
        return bool((self.reconcile is not None and self.reconcile.changed) or self.addresses_added
                    or self.addresses_removed or self.rules_changed)

    def summary(self):
        """Counts: Services seen and skipped by reason, virtual services and real servers
        wanted, IPVS actions by op, addresses bound and removed, rules changed."""
        translation = self.translation
        result = {
            'services_seen': translation.seen,
            'skipped': dict((reason, len(names)) for reason, names in sorted(translation.skipped.items())),
            'virtual_services': len(translation.services),
            'real_servers': sum(len(service.real_servers) for service in translation.services),
        }
        if self.reconcile is not None:
            result['actions'] = self.reconcile.summary()['actions']
            result['addresses'] = {'added': len(self.addresses_added), 'removed': len(self.addresses_removed)}
            result['packet_rules_changed'] = self.rules_changed
        return result


def node_context(node_name, host, snapshot, zone=None, dummy_interface='kube-ipvs0'):
    """The NodeContext of this node: its addresses from the host, its zone from the
    option or else from its Node object's label."""
    if zone is None and snapshot.node:
        labels = (snapshot.node.get('metadata') or {}).get('labels') or {}
        zone = labels.get(ZONE_LABEL) or None
    return NodeContext(name=node_name, zone=zone, addresses=tuple(host.addresses()),
                       primary=tuple(host.primary_addresses(dummy_interface)))


def desired_table(snapshot, context, options):
    """Translate only (apply: false): the Translation and the table as
    ipvs_virtual_server's services list."""
    translation = translator.translate(snapshot, context, options.proxy)
    return translation, [service_to_params(service) for service in translation.services]


def proxy_scope(options, context, state, translation):
    """What the proxy owns: the service CIDRs, the NodePort range on every address of
    the node (not only those serving NodePorts now, so a stale one goes too), what it
    created before, and what it wants now (external and LB IPs)."""
    first, last = options.node_port_range
    ports = []
    for _interface, address in context.addresses:
        network = ipaddress.ip_network(address)
        ports.append((network, first, last))
    keys = frozenset(state.services) | frozenset(service.key for service in translation.services)
    return Scope(networks=tuple(options.service_cidrs), ports=tuple(ports), keys=keys)


def delete_guard(options):
    """The engine's review hook: refuse a plan that deletes too much of what we own."""

    def review(plan):
        managed = len(plan.before)
        deleted = sum(1 for action in plan.actions if action.op == DELETE_SERVICE)
        if options.force or not managed or not deleted:
            return
        if deleted == managed or deleted > options.max_delete_ratio * managed:
            raise RefusedError(
                'refusing to delete %d of the %d virtual services this node manages (max_delete_ratio=%s): '
                'an empty or partial answer from the cluster is more often a fault than an intent; '
                'nothing was changed. Set force=true if the cluster really lost these Services.'
                % (deleted, managed, options.max_delete_ratio))

    return review


def sync(snapshot, host, backend, options, state_store, drain_store=None, node_name='', zone=None, now=None,
         want_diff=True):
    """Make the node serve the cluster's Services. Returns a SyncResult.

    host: a HostNode (node/host.py) or a double; backend: an _ipvs Backend (its
    check_mode is the run's); state_store: state.StateStore or MemoryStateStore.
    Raises KubeProxyRunningError, RefusedError, or the edges' errors; on any of them
    before step 3 nothing changed, and the guard refuses before the first kernel write.
    want_diff: False leaves result.diff None (the before/after texts of a big table
    take seconds on a slow node; a run without --diff never shows them).
    """
    check_mode = backend.check_mode
    timings = {}
    started = time.perf_counter()
    with engine.clock(timings, 'node'):
        if not options.allow_kube_proxy:
            running = host.kube_proxy_ipvs()
            if running:
                raise KubeProxyRunningError(
                    'kube-proxy runs on this node in IPVS mode (%s): two owners of one IPVS table undo each '
                    "other's changes. Hand the node over first (roles/kube_proxy, kube_proxy_state: absent) "
                    'or set allow_kube_proxy=true.' % running)
        context = node_context(node_name, host, snapshot, zone, options.proxy.dummy_interface)
    with engine.clock(timings, 'translate'):
        translation = translator.translate(snapshot, context, options.proxy)
    with engine.clock(timings, 'rules_check'):
        rules = packet_rules.render(
            translation.ports, translation.dummy_addresses,
            packet_rules.Options(masquerade=options.masquerade,
                                 cluster_cidrs=tuple(str(net) for net in options.cluster_cidrs)),
            local_endpoints=translation.local_endpoints, node_addresses=translation.node_addresses)
        # nft checks only rules that would be loaded: a converged node skips it.
        current_rules = host.read_rules()
        if packet_rules.normalise(rules) != current_rules:
            host.check_rules(rules)
    result = SyncResult(translation=translation, timings=timings, warnings=list(translation.warnings))
    with state_store.lock() if not check_mode else contextlib.nullcontext():
        state = state_store.load()
        scope = proxy_scope(options, context, state, translation)
        result.reconcile = engine.reconcile(
            backend, translation.services, scope,
            engine.ReconcileOptions(exclusive=True, allow_empty=True, drain_timeout=options.drain_timeout,
                                    review=delete_guard(options),
                                    hold=host.scheduler_hold() if options.scheduler_hold else None),
            drain_store=drain_store, now=now)
        result.warnings.extend(result.reconcile.warnings)
        with engine.clock(timings, 'dummy'):
            dummy = host.sync_dummy(options.proxy.dummy_interface, translation.dummy_addresses, state.addresses,
                                    check_mode)
        result.addresses_added, result.addresses_removed = tuple(dummy.added), tuple(dummy.removed)
        with engine.clock(timings, 'rules_apply'):
            change = host.sync_rules(rules, check_mode, before=current_rules)
        result.rules_changed = change.changed
        with engine.clock(timings, 'udp_flows'):
            result.udp_flows = tuple(host.clear_udp_flows(result.reconcile.actions, check_mode))
        new_state = ProxyState(services=frozenset(service.key for service in translation.services),
                               addresses=frozenset(dummy.owned))
        if new_state != state and not check_mode:
            state_store.save(new_state)
    if want_diff:
        with engine.clock(timings, 'diff'):
            result.diff = _diff(result, options, dummy, change)
    timings.update(('ipvs_' + name, value) for name, value in result.reconcile.timings.items())
    timings['total'] = round(time.perf_counter() - started, 6)
    return result


def _diff(result, options, dummy, rules):
    tracker = DiffTracker()
    tracker.add_text(engine.DIFF_HEADER, result.reconcile.before_text(), result.reconcile.after_text())
    before = (set(dummy.owned) - set(dummy.added)) | set(dummy.removed)
    tracker.add_text(DUMMY_HEADER % options.proxy.dummy_interface, _lines(before), _lines(dummy.owned))
    tracker.add_text(RULES_HEADER % packet_rules.TABLE, rules.before, rules.after)
    return tracker.diff()


def _lines(addresses):
    return ''.join('%s\n' % address for address in sorted(addresses))
