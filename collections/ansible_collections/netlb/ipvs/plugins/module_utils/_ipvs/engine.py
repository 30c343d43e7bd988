# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One reconcile: read -> plan -> apply (-> confirm), with timings and drain state.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The API every caller uses (the ipvs_virtual_server module, a timer-driven playbook, a
long-running watcher): build a backend, validated VirtualServices and a Scope, call
reconcile(). No Ansible here. Errors are the model's: ValidationError (bad input,
raised before the kernel is read), BackendError (kernel unreachable), ApplyError (an
action refused midway; what was applied is on the exception, and the next reconcile
plans from a fresh read, so it converges).

before/after (and their ``ipvsadm -S -n`` text) cover the services in scope only:
foreign services are never touched, so they could only add noise, and on a node shared
with kube-proxy they would be most of the text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from ansible_collections.netlb.ipvs.plugins.module_utils._diff import DiffTracker
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import plan as planner
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import gc_paused
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.drain_state import DrainStateError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import ValidationError, table_of
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.validation import service_to_params

DIFF_HEADER = 'ipvsadm -S -n (services in scope)'
MISMATCH_SHOWN = 5


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
        return save_format.render(self.before)

    def after_text(self):
        return save_format.render(self.after)

    def services(self, which='all'):
        """The in-scope table after the run, as plain dicts (JSON-friendly): 'all' of it,
        the services an action 'changed' (added or edited, not deleted), or 'none'."""
        if which == 'none':
            return []
        keys = self.after
        if which == 'changed':
            keys = set(action.service.key for action in self.actions) & set(self.after)
        return [service_to_params(self.after[key]) for key in sorted(keys)]

    def summary(self):
        """Counts: in-scope services and real servers after the run, actions by op."""
        actions = {}
        for action in self.actions:
            actions[action.op] = actions.get(action.op, 0) + 1
        return {'services': len(self.after), 'actions': actions,
                'real_servers': sum(len(service.real_servers) for service in self.after.values())}

    def diff(self):
        tracker = DiffTracker()
        tracker.add_text(DIFF_HEADER, self.before_text(), self.after_text())
        return tracker.diff()

    def as_dict(self, diff=True, services='all', actions=True):
        """JSON-friendly; diff=False skips rendering the two texts (large tables);
        services says which services to list (see services()); actions=False leaves the
        action list out (summary still counts it)."""
        result = {
            'changed': self.changed,
            'services': self.services(services),
            'summary': self.summary(),
            'draining': [entry.as_dict() for entry in self.draining],
            'timings': dict(self.timings),
        }
        if actions:
            result['actions'] = [action.as_dict() for action in self.actions]
        if diff:
            result['diff'] = self.diff()
        return result


def reconcile(backend, desired, scope, exclusive=True, purge_real_servers=True, graceful=True, drain_timeout=0,
              drain_store=None, allow_empty=False, now=None, confirm=False):
    """Make the in-scope part of the kernel table equal desired. Returns a Result.

    desired: VirtualServices (validated, all inside scope). drain_store: something with
    load()/save(state)/lock() (drain_state.DrainStore, MemoryDrainStore) or None to keep
    no state (drains then restart their clock each run). now: Unix time, for tests.
    confirm: re-read the whole table after a change and warn where it differs from the
    plan. Off by default: a read costs as much as a no-op run, and both backends already
    account for every action (netlink maps each kernel answer to its request, ipvsadm
    re-reads by itself), so the planned table is what the kernel holds.
    In check mode (backend.check_mode) nothing is written, the drain state included,
    and the actions are exactly those a real run would apply.
    """
    desired = desired if isinstance(desired, dict) else table_of(desired)
    if not desired and exclusive and not allow_empty and (scope.networks or scope.fwmarks):
        # An empty answer from an inventory or an API is more often a fault than an intent.
        raise ValidationError('services: empty with exclusive=true would delete every service in scope; '
                              'set allow_empty=true if that is intended')
    planner.check_scope(desired, scope)  # before the kernel is read, like every input check
    started = time.perf_counter()
    check_mode = backend.check_mode
    timings = {}
    clock = _Clock(timings)
    warnings = []
    locking = drain_store is not None and not check_mode
    # No cyclic GC passes while tens of thousands of tuples are made (see gc_paused).
    with (drain_store.lock() if locking else contextlib.nullcontext()), gc_paused():
        drain = _load_drain(drain_store, warnings)
        with clock('read'):
            current = backend.read()
        with clock('plan'):
            result = planner.plan(desired, current, scope, exclusive=exclusive,
                                  purge_real_servers=purge_real_servers, graceful=graceful,
                                  drain_timeout=drain_timeout, drain_state=drain,
                                  now=time.time() if now is None else now)
        with clock('apply'):
            backend.apply(result.actions)
        after = result.after
        if confirm and result.actions and not check_mode:
            with clock('confirm'):
                after = _confirm(backend, scope, result.after, warnings)
        if drain_store is not None and not check_mode and result.drain_state != drain:
            try:
                drain_store.save(result.drain_state)
            except DrainStateError as exc:
                warnings.append('%s; draining servers restart their drain_timeout clock next run' % exc)
    timings['total'] = round(time.perf_counter() - started, 6)
    return Result(actions=result.actions, before=result.before, after=after, timings=timings,
                  drain_state=result.drain_state, draining=result.draining, warnings=warnings)


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


class _Clock(object):
    """with clock('read'): ... records the seconds spent in timings['read']."""

    def __init__(self, timings):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 6)
