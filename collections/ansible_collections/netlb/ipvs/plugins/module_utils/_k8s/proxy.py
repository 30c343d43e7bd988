# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One sync of a node from a snapshot of its cluster: translate, guard, record, then the
packet rules, the IPVS table (through the one engine), the dummy interface's addresses,
the packet rules again, the state and stale UDP flows.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The same function serves the k8s_service_proxy module, a run on a timer and a
long-running watcher: no Ansible here. The node's effects go through a HostNode (real)
or a test double with the same methods, so the whole sequence is tested without root.

Order, and why (each step's writes come after what must hold before them; a run that
stops anywhere, killed included, leaks nothing and opens nothing, and the next run
converges):
1. Refuse when kube-proxy runs in IPVS mode on the node (two owners of one table fight).
2. Translate (pure); a translation that stopped early (a fault of the translator) is
   refused before anything changed. A scheduler the kernel does not offer (an annotation
   naming one it lacks: `twos` before Linux 5.12) falls back to the scheduler option, or
   rr (with the scheduler_flags it reads), with a warning naming the Service: the kernel
   would refuse that service and the whole apply with it, on every run.
3. Take the state lock (waiting up to state.LOCK_WAIT seconds, then failing with its
   holder named), load the state and read the node's rules, both inside the lock (another
   run cannot change them between this read and our replace; a SyncMemo's listing is
   reused while the ruleset's generation has not moved). Render the new rules and,
   unless the node holds them already, have nft check them, so rules nft would refuse
   fail the run before anything changed. Every command (nft, conntrack) is killed after
   _command.NODE_TIMEOUT: a hung one fails this run instead of blocking every later one.
4. The IPVS plan, within the proxy's scope: the service CIDRs, the NodePort range on the
   node's addresses, and what the state says the proxy created. The guard sees it before
   anything is applied (proxy_guards.delete_guard: the rule is there) and refuses an
   answer that takes away too many managed virtual services or too many serving real
   servers of those that stay: an empty or stale answer is far more often a fault than
   an intent.
5. Record before changing: the state becomes the union of what it held and what this run
   creates (virtual services, dummy addresses), and queues the UDP flows this plan leaves
   stale. Whatever a run is killed after, nothing it made is unrecorded: the next run owns
   it, removes what it no longer wants, and clears the flows.
6. Packet rules, first load (packet_rules_transition.transition): the new rules plus the old rules'
   elements for what goes. A new load-balancer address is restricted to its
   loadBalancerSourceRanges before it is bound and served; one that goes keeps its
   restriction while its virtual service still exists.
7. The IPVS table, through the one engine (new real servers before old ones go, drains).
8. Dummy-interface addresses: the wanted ones bound (their virtual services and rules are
   in place), the ones the proxy bound before and no longer wants removed (an operator's
   address is never touched).
9. Packet rules, final load: exactly the new table. What went from it (a removed
   service's restriction, masquerade, dummy reject) goes only now, after its virtual
   service and its address.
10. The state shrunk to what the node holds now, the flows still queued; then the stale
    UDP conntrack entries of UDP real servers that went (kubernetes#71514), and of UDP
    services that had no real server and have one now (kube-proxy's rule), are deleted
    and the queue emptied. Each save is skipped when nothing changed, so a converged run
    writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import engine
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import Scope
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.params import service_to_params
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s import translate as translator
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.cluster import NodeContext
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import (
    conntrack, packet_rules, packet_rules_nft, packet_rules_text, packet_rules_transition, rules_generation)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.dummy import DummyResult
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.options import DUMMY_INTERFACE
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.proxy_guards import (
    KubeProxyRunningError,
    delete_guard,
    fall_back_schedulers,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.state import ProxyState
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.translate_cache import TranslationCache

ZONE_LABEL = 'topology.kubernetes.io/zone'
DUMMY_HEADER = 'addresses on %s (bound by netlb.ipvs)'
RULES_HEADER = 'nft list table %s'
SCOPE_ANSWERS = 1024  # answers a reused Scope may hold beyond twice its keys (SyncMemo)


@dataclasses.dataclass
class SyncResult:
    """What a sync did (in check mode: would do)."""

    translation: object
    reconcile: object = None  # engine.Result
    addresses_added: tuple = ()
    addresses_removed: tuple = ()
    rules_changed: bool = False
    udp_flows: tuple = ()  # conntrack Flows cleared: of UDP real servers that went, now or in a stopped run
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


class SyncMemo(object):
    """What a long-running caller (the watcher) keeps between its syncs, so a sync on one
    change costs about what the change touched; sync(memo=) without one is whole.

    translation: the Services' pieces of the last translation (translate_cache.py: a
    Service whose objects did not change keeps its piece). rules: the inputs of the last
    rendered packet rules and their text, rendered and normalised: the same ports,
    dummy addresses, hairpin endpoints, node addresses and options render the same text
    (an endpoint change of a ClusterIP Service changes none of them unless the endpoint
    is on this node). dummy: the dummy interface as the last sync left it (interface,
    addresses wanted, owned), trusted like the IPVS table kept in memory (_watch/table.py).

    rules_seen: (the nftables generation, our table as listed then): the listing is
    reused only while the kernel reports that very generation (any commit to any table
    raises it), so every sync asks the kernel, and a rule changed behind our back is
    listed again; the same test as the timer run's short way (_k8s/converged.py). A sync
    that loads rules moves the generation itself: when it moved by exactly this sync's
    own loads since the listing (each nft transaction raises it by one), nobody else
    committed in between and the table is what the sync loaded (_rules_after_loads);
    anything else and the next sync lists the rules.

    Two kinds, forgotten apart: dummy is trust in the host, which someone may change
    behind the caller's back: forget_host() at every full resync (the interface is read
    again). The rest are pure caches of the inputs (a piece, a text, a scope is reused
    only for equal inputs, and made from them the same every time) or, for rules_seen,
    checked against the kernel at each use, so a resync keeps them: it reads the kernel
    table, the ruleset's generation (the rules when it moved) and the interface and
    plans, but translates and renders nothing that did not change. forget() (after any
    failure) drops both, and the next sync does it all. Bounded: one translation's
    pieces, one table's text."""

    def __init__(self):
        self.translation = TranslationCache()
        self.rules = None  # (inputs, packet_rules.Rendered) of the last rendering
        self.rendered_before = None  # the Rendered before it (the transition's start)
        self.scope_ports = None  # (addresses, node_port_range, proxy_scope's ports)
        self.scope = None  # the last proxy_scope()
        self.dummy = None  # (interface, wanted, owned): what the interface holds since the last sync
        self.rules_seen = None  # (ruleset generation, our table normalised) as listed at that generation

    def forget(self):
        """The next sync is whole: translated, rendered and the interface read again."""
        self.translation.clear()
        self.rules = self.rendered_before = self.scope_ports = self.scope = self.rules_seen = None
        self.forget_host()

    def forget_host(self):
        """The next sync reads the host afresh (the dummy interface); the pure caches of
        the inputs stay (see the class)."""
        self.dummy = None


def node_context(node_name, host, snapshot, zone=None, dummy_interface=DUMMY_INTERFACE):
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


def proxy_scope(options, context, state, translation, memo=None):
    """What the proxy owns: the service CIDRs, the NodePort range on every address of
    the node (not only those serving NodePorts now, so a stale one goes too), what it
    created before, and what it wants now (external and LB IPs). memo: a SyncMemo whose
    ports are reused while the node's addresses and the range stay the same."""
    first, last = options.node_port_range
    if memo is not None and memo.scope_ports is not None and memo.scope_ports[:2] == (context.addresses, (first, last)):
        ports = memo.scope_ports[2]
    else:
        ports = tuple((ipaddress.ip_network(address), first, last) for _interface, address in context.addresses)
        if memo is not None:
            memo.scope_ports = (context.addresses, (first, last), ports)
    keys = frozenset(state.services) | frozenset(service.key for service in translation.services)
    scope = Scope(networks=tuple(options.service_cidrs), ports=ports, keys=keys)
    if memo is not None:
        # The same scope as the last sync's (an endpoint change): that one, with its test
        # prepared and its answers, while they stay within the table's size.
        if memo.scope == scope and len(memo.scope.test().answers) <= 2 * len(keys) + SCOPE_ANSWERS:
            return memo.scope
        memo.scope = scope
    return scope


def sync(snapshot, host, backend, options, state_store, drain_store=None, node_name='', zone=None, now=None,
         want_diff=True, memo=None):
    """Make the node serve the cluster's Services, in the order at the top. Returns a SyncResult.

    host: a HostNode (node/host.py) or a double; backend: an _ipvs Backend (its
    check_mode is the run's); state_store: state.StateStore or MemoryStateStore.
    Raises KubeProxyRunningError, RefusedError, _run_lock.LockBusy, or the edges' errors; on
    any of them before step 5 nothing changed, and the guard refuses before the first write.
    want_diff: False leaves result.diff None (the before/after texts of a big table
    take seconds on a slow node; a run without --diff never shows them).
    memo: a SyncMemo kept between syncs (never in check mode); a sync that raises
    leaves it forgotten.
    """
    if memo is not None and backend.check_mode:
        raise ValueError('a SyncMemo is for real runs only')
    try:
        return _sync(snapshot, host, backend, options, state_store, drain_store, node_name, zone, now, want_diff, memo)
    except BaseException:
        if memo is not None:
            memo.forget()
        raise


def _sync(snapshot, host, backend, options, state_store, drain_store, node_name, zone, now, want_diff, memo):
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
        translation = translator.translate(snapshot, context, options.proxy,
                                           cache=memo.translation if memo is not None else None)
        translator.refuse_incomplete(translation)  # a partial table would delete what it did not reach
        warnings = list(translation.warnings)
        warnings.extend(fall_back_schedulers(translation, host.schedulers(), options.proxy.scheduler,
                                             options.proxy.scheduler_flags))
    result = SyncResult(translation=translation, timings=timings, warnings=warnings)
    wanted = ProxyState(services=frozenset(service.key for service in translation.services),
                        addresses=frozenset(translation.dummy_addresses))
    with state_store.lock() if not check_mode else contextlib.nullcontext():
        state = state_store.load()
        with engine.clock(timings, 'rules_check'):
            rendered = _rendered(translation, options, memo)
            rules, new_rules = rendered.text, rendered.normalised
            current_rules = _read_rules(host, memo)
            # nft checks only rules that would be loaded: a converged node skips it.
            if new_rules != current_rules:
                host.check_rules(rules)
        steps = _Steps(host, state_store, state, current_rules, memo.rendered_before if memo is not None else None)
        scope = proxy_scope(options, context, state, translation, memo)
        result.reconcile = engine.reconcile(
            backend, translation.services, scope,
            engine.ReconcileOptions(exclusive=True, allow_empty=True, drain_timeout=options.drain_timeout,
                                    review=delete_guard(options),
                                    prepare=lambda plan: steps.prepare(plan, wanted, rendered, timings),
                                    hold=host.scheduler_hold() if options.scheduler_hold else None),
            drain_store=drain_store, now=now)
        result.warnings.extend(result.reconcile.warnings)
        with engine.clock(timings, 'dummy'):
            dummy = _sync_dummy(host, options.proxy.dummy_interface, translation.dummy_addresses, state.addresses,
                                check_mode, memo)
        result.addresses_added, result.addresses_removed = tuple(dummy.added), tuple(dummy.removed)
        with engine.clock(timings, 'rules_apply'):
            if new_rules != steps.rules:  # else the node holds them: sync_rules would find nothing to do
                steps.loads += host.sync_rules(rules, check_mode, before=steps.rules, normalised=new_rules).changed
            if memo is not None and steps.loads:
                memo.rules_seen = _rules_after_loads(host, memo.rules_seen, steps.loads, new_rules)
        timings['rules_apply'] += timings.pop('rules_first', 0.0)
        change = packet_rules_nft.ApplyResult(new_rules != current_rules, current_rules, new_rules)
        result.rules_changed = change.changed
        flows = steps.queued | frozenset(conntrack.plan_flows(result.reconcile))
        done = ProxyState(services=wanted.services, addresses=frozenset(dummy.owned), udp_flows=flows)
        with engine.clock(timings, 'udp_flows'):
            steps.save(done, check_mode)
            result.udp_flows = tuple(host.clear_udp_flows(sorted(flows), check_mode))
            steps.save(dataclasses.replace(done, udp_flows=frozenset()), check_mode)
    if want_diff:
        with engine.clock(timings, 'diff'):
            result.diff = _diff(result, options, dummy, change)
    timings.update(('ipvs_' + name, value) for name, value in result.reconcile.timings.items())
    timings['total'] = round(time.perf_counter() - started, 6)
    return result


def _rendered(translation, options, memo):
    """packet_rules.Rendered of translation: from memo when the inputs are those of the
    last rendering (memo.rules), else rendered, reusing what the last one can lend."""
    rules_options = packet_rules.Options(masquerade=options.masquerade,
                                         cluster_cidrs=tuple(str(net) for net in options.cluster_cidrs))
    inputs = (translation.ports, translation.dummy_addresses, rules_options, translation.local_endpoints,
              translation.node_addresses)
    if memo is not None and memo.rules is not None and memo.rules[0] == inputs:
        return memo.rules[1]
    rendered = packet_rules.render_lines(
        translation.ports, translation.dummy_addresses, rules_options, local_endpoints=translation.local_endpoints,
        node_addresses=translation.node_addresses,
        previous=memo.rules[1] if memo is not None and memo.rules is not None else None)
    if memo is not None:
        memo.rendered_before = memo.rules[1] if memo.rules is not None else None
        memo.rules = (inputs, rendered)
    return rendered


def _read_rules(host, memo):
    """host.read_rules(), unless memo listed them at the very ruleset generation the
    kernel reports now (rules_generation.py: any commit to any table raises it), so the
    text listed then is the text now; the generation is read before the listing, so a
    change between the two is listed again next time. Unknown generation: listed."""
    if memo is None:
        return host.read_rules()
    generation = host.rules_generation()
    if memo.rules_seen is not None and rules_generation.unchanged(generation, memo.rules_seen[0]):
        return memo.rules_seen[1]
    rules = host.read_rules()
    memo.rules_seen = (tuple(generation), rules) if generation else None
    return rules


def _rules_after_loads(host, seen, loads, rules):
    """SyncMemo.rules_seen after this sync loaded rules loads times (each its own nft
    transaction) since seen's listing: (the generation now, rules) when the generation
    moved by exactly that many (no one else's commit between the listing and now), else
    None (the next sync lists them)."""
    now = host.rules_generation()
    if seen is None or not now or now[0] != seen[0][0] or now[1] != (seen[0][1] + loads) & 0xffffffff:
        return None
    return tuple(now), rules


def _sync_dummy(host, interface, wanted, owned, check_mode, memo):
    """host.sync_dummy, unless memo says the interface holds wanted, owned, since the
    last sync: then the DummyResult it would give (nothing to add or remove)."""
    wanted, owned = frozenset(wanted), frozenset(owned)
    if memo is not None and memo.dummy == (interface, wanted, owned):
        return DummyResult(interface, False, [], [], owned)
    result = host.sync_dummy(interface, wanted, owned, check_mode)
    if memo is not None:
        memo.dummy = (interface, wanted, frozenset(result.owned))
    return result


class _Steps(object):
    """What sync() writes around the engine's apply (order steps 5, 6 and 10): the state
    as saved last (saved), the packet rules the node holds (rules), the flows queued."""

    def __init__(self, host, state_store, state, rules, rendered_before=None):
        self.host = host
        self.state_store = state_store
        self.saved = state
        self.rules = rules
        self.rendered_before = rendered_before  # the Rendered of the last sync's rules (SyncMemo), or None
        self.queued = state.udp_flows
        self.loads = 0  # nft transactions this sync committed (each raises the ruleset generation by one)

    def save(self, state, check_mode):
        if state != self.saved and not check_mode:
            self.state_store.save(state)
            self.saved = state

    def prepare(self, plan, wanted, rendered, timings):
        """Steps 5 and 6, the engine's prepare hook (real runs only): record the union and
        the flows this plan leaves stale, then load the transition rules."""
        self.queued = self.queued | frozenset(conntrack.plan_flows(plan))
        self.save(ProxyState(services=self.saved.services | wanted.services,
                             addresses=self.saved.addresses | wanted.addresses, udp_flows=self.queued), False)
        with engine.clock(timings, 'rules_first'):
            new_rules = rendered.normalised
            if new_rules == self.rules:  # nothing goes: the transition is new_rules (a test holds it)
                return
            before = self.rendered_before
            if before is not None and before.normalised == self.rules:  # the node holds the last sync's rules
                first, normalised = packet_rules_transition.transition_lines(before.lines, rendered.lines)
            else:
                first = packet_rules_transition.transition(self.rules, new_rules)
                normalised = packet_rules_text.normalise(first)
            if normalised != self.rules:
                loaded = self.host.sync_rules(first, False, before=self.rules, normalised=normalised)
                self.loads += loaded.changed
                self.rules = loaded.after


def _diff(result, options, dummy, rules):
    tracker = DiffTracker()
    tracker.add_text(engine.DIFF_HEADER, result.reconcile.before_text(), result.reconcile.after_text())
    before = (set(dummy.owned) - set(dummy.added)) | set(dummy.removed)
    tracker.add_text(DUMMY_HEADER % options.proxy.dummy_interface, _lines(before), _lines(dummy.owned))
    tracker.add_text(RULES_HEADER % packet_rules.TABLE, rules.before, rules.after)
    return tracker.diff()


def _lines(addresses):
    return ''.join('%s\n' % address for address in sorted(addresses))
