# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One reconcile: read -> plan -> review -> prepare -> apply -> settle drains (-> confirm), with timings and drain state.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The API every caller uses (the ipvs_virtual_server module, a timer-driven playbook, a
long-running watcher): build a backend, validated VirtualServices and a Scope, call
reconcile() (with ReconcileOptions). No Ansible here. Errors are the model's:
ValidationError (bad input, raised before the kernel is read), RefusedError (the
caller's review refused the plan; nothing applied), BackendError (kernel unreachable,
ipvsadm failed; its evidence dict says how), ApplyError (an action refused midway;
what was applied is on the exception, and the next reconcile plans from a fresh read,
so it converges).

Apply order: the plan's actions (plan.py rule 4), except that scheduler changes of
live services go first, in batches of HOLD_BATCH, each inside ReconcileOptions.hold
(hold.NftHold): the kernel refuses new connections to a service while it swaps its
scheduler, the hold drops them for that moment instead, and clients retry. A run that
changes a scheduler says in a warning whether it was held.

before/after (and their ``ipvsadm -S -n`` text) cover the services in scope only:
foreign services are never touched, so they could only add noise, and on a node shared
with kube-proxy they would be most of the text.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import operator
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import plan as planner
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStateError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.hold import HoldError, holdable
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import EDIT_SERVICE, ApplyError, table_of
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.params import service_to_params

DIFF_HEADER = 'ipvsadm -S -n (services in scope)'
MISMATCH_SHOWN = 5
_OP = operator.attrgetter('op')
_SERVICE_KEY = operator.attrgetter('service.key')
# Scheduler edits per hold: the kernel waits an RCU grace period per edit (~20 ms in the
# lab VM), so a batch stays well under the 1 s after which a dropped SYN is retried.
HOLD_BATCH = 16


@dataclasses.dataclass
class Result:
    """What a reconcile did (or, in check mode, would do)."""

    actions: tuple
    before: dict
    after: dict
    timings: dict
    drain_state: dict
    draining: tuple = ()
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def changed(self):
        return bool(self.actions)

    def before_text(self):
        return _save_format().render(self.before)

    def after_text(self):
        return _save_format().render(self.after)

    def _service_keys(self, which):
        """Keys of the in-scope table after the run, sorted: 'all', those an action
        'changed' (added or edited, not deleted), or 'none'."""
        if which == 'none':
            return []
        if which == 'changed':
            # map over a C getter: a full load has 55,000 actions for 5,000 keys.
            return sorted(set(map(_SERVICE_KEY, self.actions)).intersection(self.after))
        return sorted(self.after)

    def summary(self):
        """Counts: in-scope services and real servers after the run, actions by op."""
        actions = dict(collections.Counter(map(_OP, self.actions)))
        return {'services': len(self.after), 'actions': actions,
                'real_servers': sum(len(service.real_servers) for service in self.after.values())}

    def diff(self):
        tracker = DiffTracker()
        tracker.add_text(DIFF_HEADER, self.before_text(), self.after_text())
        return tracker.diff()

    def as_dict(self, diff=True, services='all', actions=True, limit=None):
        """JSON-friendly; diff=False skips rendering the two texts (large tables);
        services says which services to list (see _service_keys()); actions=False leaves the
        action list out (summary still counts it). limit (None: no limit) caps the
        services, actions and draining lists; 'truncated' then gives the full length of
        each list that was cut, and summary counts everything either way."""
        listed = {
            'services': self._service_keys(services),
            'actions': self.actions if actions else None,
            'draining': self.draining,
        }
        truncated = dict((name, len(items)) for name, items in listed.items()
                         if items is not None and limit is not None and len(items) > limit)
        result = {
            'changed': self.changed,
            'services': [service_to_params(self.after[key]) for key in listed['services'][:limit]],
            'summary': self.summary(),
            'draining': [entry.as_dict() for entry in self.draining[:limit]],
            'timings': dict(self.timings),
        }
        if actions:
            result['actions'] = [action.as_dict() for action in self.actions[:limit]]
        if truncated:
            result['truncated'] = truncated
        if diff:
            result['diff'] = self.diff()
        return result


def _save_format():
    # Only a diff needs the text form: a module run without --diff does not compile it
    # (modules run from a zip, their imports are compiled anew on every run).
    from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
    return save_format


@dataclasses.dataclass(frozen=True)
class ReconcileOptions:
    """How a reconcile treats what is not wanted, and who may veto its plan.

    exclusive: delete in-scope services not in desired. purge_real_servers: delete real
    servers of a managed service that are not in desired. graceful: drain those (weight
    0) before deleting them (TCP, SCTP, fwmark). drain_timeout: seconds after which a
    draining server goes even with connections (0: never). allow_empty: an empty desired
    table with exclusive and a scope of ranges may delete every service in scope.
    confirm: re-read the whole table after a change and warn where it differs from the
    plan (off by default: a read costs as much as a no-op run, and both backends already
    account for every action, so the planned table is what the kernel holds).
    review: None or a callable review(plan) given the planner's Plan (actions, before,
    after) after planning and before anything is applied, in check mode too; it may
    raise an IpvsError (model.RefusedError) to refuse the run: then nothing is applied
    and the drain state is not saved.
    prepare: None or a callable prepare(plan) called after review, just before the first
    write to the table, in real runs only: the caller's own writes that must come first
    (the Kubernetes proxy records what it is about to create, and loads its packet rules).
    What it raises ends the run with the table untouched.
    """

    exclusive: bool = True
    purge_real_servers: bool = True
    graceful: bool = True
    drain_timeout: int = 0
    allow_empty: bool = False
    confirm: bool = False
    review: object = None
    hold: object = None
    prepare: object = None


DEFAULT_OPTIONS = ReconcileOptions()


def check_input(desired, scope, options=DEFAULT_OPTIONS):
    """Every check of the input that needs no kernel; raises ValidationError.

    reconcile() calls it before the kernel is read; a caller that opens the kernel
    itself (the module: get_backend probes it) calls it first, so a node without IPVS
    is told about bad input before it is told about the kernel.
    """
    if not desired and options.exclusive and not options.allow_empty and scope.has_ranges:
        # An empty answer from an inventory or an API is more often a fault than an intent.
        raise ValidationError('services: empty with exclusive=true would delete every service in scope; '
                              'set allow_empty=true if that is intended')
    planner.check_scope(desired if isinstance(desired, dict) else [service.key for service in desired], scope)


def reconcile(backend, desired, scope, options=DEFAULT_OPTIONS, drain_store=None, now=None):
    """Make the in-scope part of the kernel table equal desired. Returns a Result.

    desired: VirtualServices (validated, all inside scope). options: ReconcileOptions.
    drain_store: something with load()/save(state)/lock() (drain_state.DrainStore,
    MemoryDrainStore) or None to keep no state (drains then restart their clock each
    run). now: Unix time, for tests.

    One run converges (plan.py rule 7): read, plan, review, apply; then the counters of
    the servers this run set to weight 0 are re-read and those idle are deleted.
    In check mode (backend.check_mode) nothing is written, the drain state included,
    and the actions are exactly those a real run would apply given the same counters.
    """
    desired = desired if isinstance(desired, dict) else table_of(desired)
    check_input(desired, scope, options)  # before the kernel is read, like every input check
    started = time.perf_counter()
    check_mode = backend.check_mode
    timings = {}
    warnings = []
    locking = drain_store is not None and not check_mode
    with drain_store.lock() if locking else contextlib.nullcontext():
        drain = _load_drain(drain_store, warnings)
        with clock(timings, 'read'):
            current = backend.read()
        with clock(timings, 'plan'):
            first = planner.plan(desired, current, scope, exclusive=options.exclusive,
                                 purge_real_servers=options.purge_real_servers, graceful=options.graceful,
                                 drain_timeout=options.drain_timeout, drain_state=drain,
                                 now=time.time() if now is None else now)
        if options.review is not None:
            options.review(first)
        if options.prepare is not None and not check_mode:
            options.prepare(first)
        flips = scheduler_changes(first.actions, first.before)
        with clock(timings, 'apply'):
            held = _apply(backend, first.actions, flips, options.hold)
        result = first
        if first.settle:
            with clock(timings, 'settle'):
                result = _settle(backend, first, current, drain_store, check_mode)
        actions = first.actions + result.actions if result is not first else first.actions
        after = result.after
        if options.confirm and actions and not check_mode:
            with clock(timings, 'confirm'):
                after = _confirm(backend, scope, result.after, warnings)
        _save_drain(drain_store, check_mode, drain, result.drain_state, warnings)
    timings['total'] = round(time.perf_counter() - started, 6)
    _warn_scheduler_changes(flips, held, check_mode, warnings)
    return Result(actions=actions, before=first.before, after=after, timings=timings,
                  drain_state=result.drain_state, draining=result.draining, warnings=warnings)


def _settle(backend, first, current, drain_store, check_mode):
    """The second step (plan.py rule 7): re-read the counters of the services whose
    servers were just drained, delete those idle. In check mode nothing was drained, so
    the counters first read are the current ones."""
    if check_mode:
        counters = dict((key, _counters_of(current[key])) for key in first.settle if key in current)
    else:
        counters = backend.read_counters(first.settle)
    second = planner.settle_drains(first, counters)
    try:
        backend.apply(second.actions)
    except ApplyError as exc:
        # The drains took; keep their clocks, and report the whole run as applied.
        _save_drain(drain_store, check_mode, None, first.drain_state, [])
        raise ApplyError(str(exc), applied=list(first.actions) + exc.applied, failed=exc.failed,
                         evidence=exc.evidence)
    return second


def _counters_of(service):
    return dict((rs.key, service.connections_of(rs.key)) for rs in service.real_servers)


def _save_drain(store, check_mode, old, new, warnings):
    if store is None or check_mode or new == old:
        return
    try:
        store.save(new)
    except DrainStateError as exc:
        warnings.append('%s; draining servers restart their drain_timeout clock next run' % exc)


def scheduler_changes(actions, before):
    """The edit_service actions that change the scheduler of a live service."""
    return [action for action in actions if action.op == EDIT_SERVICE
            and action.service.scheduler != before[action.service.key].scheduler]


class Held(collections.namedtuple('Held', ('how', 'why'))):
    """How the scheduler changes of a run went: how is HELD, WOULD_HOLD (check mode)
    or NOT_HELD; why says what kept them from being held, or what went wrong after."""

    __slots__ = ()


HELD = 'held'
WOULD_HOLD = 'would hold'
NOT_HELD = 'not held'


def _apply(backend, actions, flips, hold):
    """Apply actions; the holdable ones of flips (scheduler changes, see
    ReconcileOptions.hold) first, in held batches. Returns a Held, or None when there
    is nothing to hold."""
    held = [action for action in flips if holdable(action.service.key)]
    if not held:
        backend.apply(actions)
        return None
    if hold is None:
        backend.apply(actions)
        return Held(NOT_HELD, 'no hold configured')
    if backend.check_mode:
        try:
            hold.check()
        except HoldError as exc:
            return Held(NOT_HELD, str(exc))
        return Held(WOULD_HOLD, '')
    first = set(id(action) for action in held)
    rest = [action for action in actions if id(action) not in first]
    outcome, placed, applied = Held(HELD, ''), False, []
    try:
        for start in range(0, len(held), HOLD_BATCH):
            batch = held[start:start + HOLD_BATCH]
            if outcome.how == HELD:
                try:
                    hold.place([action.service.key for action in batch])  # replaces the batch before
                    placed = True
                except HoldError as exc:
                    outcome = Held(NOT_HELD, str(exc))  # the rest goes unheld, as without a hold
            backend.apply(batch)
            applied.extend(batch)
    except ApplyError as exc:
        raise ApplyError(str(exc), applied=applied + list(exc.applied), failed=exc.failed, evidence=exc.evidence)
    finally:
        if placed:
            try:
                hold.release()
            except HoldError as exc:
                # Not a failure of the run: the hold's entries time out by themselves.
                outcome = Held(outcome.how, str(exc))
    try:
        backend.apply(rest)
    except ApplyError as exc:
        raise ApplyError(str(exc), applied=applied + list(exc.applied), failed=exc.failed, evidence=exc.evidence)
    return outcome


def _warn_scheduler_changes(flips, held, check_mode, warnings):
    """Say which live services changed scheduler, and whether new connections were held
    (dropped for that moment, so clients retry) or refused while the kernel swapped."""
    if not flips:
        return
    keys = [action.service.key for action in flips]
    shown = ', '.join(str(key) for key in keys[:MISMATCH_SHOWN]) + (' ...' if len(keys) > MISMATCH_SHOWN else '')
    if held is None:
        how = ''
    elif held.how == WOULD_HOLD:
        how = 'a real run holds new TCP/SCTP connections while the kernel swaps schedulers (dropped for that ' \
              'moment, not refused: clients retry)'
    elif held.how == HELD:
        how = 'new TCP/SCTP connections arriving while the kernel swapped schedulers were held (dropped for ' \
              'that moment, not refused: clients retry)%s' % ('; ' + held.why if held.why else '')
    else:
        how = 'new connections arriving while the kernel swaps schedulers are refused (not held: %s)' % held.why
    parts = [how] if how else []
    if any(not holdable(key) for key in keys):
        parts.append('UDP cannot be held (without conntrack no rule tells a datagram opening a flow): one '
                     'arriving while the kernel swaps schedulers is refused')
    warnings.append('scheduler %s on %d live service(s) (%s): %s' % (
        'would change' if check_mode else 'changed', len(keys), shown, '; '.join(parts)))


def _load_drain(store, warnings):
    if store is None:
        return {}
    try:
        return store.load()
    except DrainStateError as exc:
        # Losing timestamps only delays deletions (clocks restart), so carry on.
        warnings.append('%s; starting with an empty drain state' % exc)
        return {}


def _confirm(backend, scope, expected, warnings):
    """Re-read the kernel: what it holds in scope after apply. A difference from the
    plan means a backend or kernel normalises something the model does not, and runs
    would never converge: say so rather than hide it."""
    actual = dict((key, svc) for key, svc in backend.read().items() if scope.contains(key))
    if actual != expected:
        keys = sorted(set(actual) | set(expected))
        differ = [str(key) for key in keys if actual.get(key) != expected.get(key)]
        warnings.append('after apply the kernel differs from the plan for %d service(s): %s%s'
                        % (len(differ), ', '.join(differ[:MISMATCH_SHOWN]),
                           ' ...' if len(differ) > MISMATCH_SHOWN else ''))
    return actual


@contextlib.contextmanager
def clock(timings, name):
    """with clock(timings, 'read'): ... records the seconds spent in timings['read']."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - start, 6)
