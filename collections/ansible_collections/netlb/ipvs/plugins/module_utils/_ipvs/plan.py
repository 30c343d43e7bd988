# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Desired table + current table + scope -> ordered actions, the table after, drain state.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Rules (the invariants the tests hold this module to):

1. Only services inside scope are looked at; everything else is never in an action,
   and drain-state entries of other scopes are passed through untouched.
2. Pure: no I/O, no clock. ``now`` and the drain timestamps are inputs, the new drain
   state is an output, so check mode and a real run plan exactly the same actions.
3. Change in place, never delete+add: a service whose scheduler, flags or persistence
   differ is edited; a real server whose weight, forwarding or thresholds differ is
   edited. Each add/edit carries the complete entry, as the kernel's "set" replaces it.
4. Actions come in ACTION_ORDER: add services, edit services, add real servers, edit
   real servers, delete real servers, delete services. New real servers are therefore
   in place before old ones go. Within a kind, order is by service key then server key.
5. A real server leaving a service (purge_real_servers) goes at once when not graceful,
   for UDP, or when it is idle at weight 0. Otherwise it is drained: weight 0 now (and
   the service is listed in Plan.settle), deleted once it has no connections or
   drain_timeout (if not 0) has passed since the drain began. Waiting is not a change.
   A drained server that is wanted again gets its weight back and leaves the drain state.
6. A service not wanted (exclusive) is deleted at once with its real servers.
7. One run converges: once the drain edits are applied, the caller re-reads the counters
   of the Plan.settle services and settle_drains() (pure, a second small step) deletes
   the draining servers that are idle now; at weight 0 no new connection can reach them
   (persistence templates included, with expire_quiescent_template=1), so idle stays
   idle. Its actions are all delete_server and come after the first step's; each step
   is in ACTION_ORDER on its own. In check mode nothing was set to 0, so the counters of
   the first read are the current ones and settle_drains is given those.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

from ansible_collections.netlb.ipvs.plugins.module_utils._errors import ValidationError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    ACTION_ORDER,
    ADD_SERVER,
    ADD_SERVICE,
    DELETE_SERVER,
    DELETE_SERVICE,
    EDIT_SERVER,
    EDIT_SERVICE,
    Action,
    SERVER_SETTING_NAMES,
    SERVICE_SETTING_NAMES,
    table_of,
)

SETTING_FIELDS = SERVICE_SETTING_NAMES
SERVER_FIELDS = SERVER_SETTING_NAMES


class Draining(collections.namedtuple('Draining', ('service', 'server', 'since', 'connections'))):
    """A real server at weight 0 that a later run will delete: its ServiceKey, the
    RealServer, when the drain began, and its connections (active + inactive) when planned."""

    __slots__ = ()

    def as_dict(self):
        return {'service': str(self.service), 'server': self.server.endpoint, 'since': self.since,
                'connections': self.connections}


@dataclasses.dataclass(frozen=True)
class Plan:
    """actions in apply order; before/after are the in-scope tables (ServiceKey ->
    VirtualService); drain_state is the whole new state, other scopes' entries included."""

    actions: tuple
    before: dict
    after: dict
    drain_state: dict
    draining: tuple = ()
    settle: tuple = ()  # ServiceKeys whose servers this plan drains: re-read them after apply (rule 7)

    @property
    def changed(self):
        return bool(self.actions)


def plan(desired, current, scope, exclusive=True, purge_real_servers=True, graceful=True,
         drain_timeout=0, drain_state=None, now=0.0):
    """Plan the changes that turn the in-scope part of current into desired.

    desired: VirtualServices (iterable or table), all inside scope. current: the kernel
    table with counters. drain_state: {(ServiceKey, (address, port)): since}.
    """
    if not isinstance(desired, dict):
        desired = table_of(desired)
    owned = scope.test()
    keys = sorted(desired)
    check_scope(keys, scope, owned)
    old_drain = drain_state or {}
    context = _Context(old_drain, graceful, drain_timeout, now)
    context.drain_state.update((entry, since) for entry, since in old_drain.items() if not owned(entry[0]))

    before = dict((key, svc) for key, svc in current.items() if owned(key))
    # The table after is built alongside the actions (what apply_to_table(before, actions)
    # gives, which the tests hold it to) rather than by replaying 55,000 of them.
    after = dict(before)
    added = context.actions[ADD_SERVER]
    for key in keys:
        want = desired[key]
        have = before.get(key)
        if have is None:
            context.add(ADD_SERVICE, want, reason='new')
            added.extend(Action.new_servers(want))
            after[key] = want
            continue
        edit = want.settings() != have.settings()
        if edit:
            context.add(EDIT_SERVICE, want, reason=_changed(SETTING_FIELDS, have, want))
        if want.real_servers != have.real_servers:  # counters are not compared: cheap no-op
            servers = context.servers(want, have, purge_real_servers)
        elif edit:
            servers = have.real_servers
        else:
            continue
        after[key] = want.with_servers(servers, have.connections)
    if exclusive:
        for key in sorted(set(before) - set(desired)):
            context.add(DELETE_SERVICE, before[key], reason='not listed')
            del after[key]

    actions = tuple(itertools.chain.from_iterable(context.actions[op] for op in ACTION_ORDER))
    settle = sorted(set(action.service.key for action in context.actions[EDIT_SERVER] if action.reason == 'drain'))
    return Plan(actions=actions, before=before, after=after, drain_state=context.drain_state,
                draining=tuple(context.draining), settle=tuple(settle))


def settle_drains(first, counters):
    """The second step of a run (rule 7): delete the draining servers now idle.

    first: the Plan just applied. counters: {ServiceKey: {(address, port): (active,
    inactive)}} re-read for (some of) first.settle, every real server the kernel holds
    for that service; a service or server not in it is left waiting. Returns a Plan whose
    actions are only the new deletes, whose before is first.before and whose after,
    drain_state and draining are those of the whole run.
    """
    deletes = []
    draining = []
    drain_state = dict(first.drain_state)
    after = dict(first.after)
    gone = {}
    for entry in first.draining:
        held = counters.get(entry.service, {}).get(entry.server.key)
        if held is None or sum(held):
            draining.append(entry if held is None else entry._replace(connections=sum(held)))
            continue
        service = after[entry.service]
        deletes.append(Action(DELETE_SERVER, service, entry.server, 'idle'))
        drain_state.pop((entry.service, entry.server.key), None)
        gone.setdefault(entry.service, set()).add(entry.server.key)
    for key, servers in gone.items():
        service = after[key]
        after[key] = service.replace(real_servers=tuple(rs for rs in service.real_servers if rs.key not in servers))
    deletes.sort(key=lambda action: (action.service.key, action.server.key))
    return Plan(actions=tuple(deletes), before=first.before, after=after, drain_state=drain_state,
                draining=tuple(draining))


def check_scope(keys, scope, owned=None):
    """Raise ValidationError naming every key outside scope (a caller's bug: the
    planner never acts outside scope, so it refuses rather than ignores them)."""
    owned = owned or scope.test()
    # Sorted only when there is something to report: this runs for every key of a big
    # table, up to three times a run (the module, reconcile, the planner), each asking
    # the scope's one memoised test.
    outside = [key for key in keys if not owned(key)]
    if outside:
        raise ValidationError(['%s: outside scope' % (key,) for key in sorted(outside)])


class _Context(object):
    def __init__(self, old_drain, graceful, drain_timeout, now):
        self.old_drain = old_drain
        self.graceful = graceful
        self.drain_timeout = drain_timeout
        self.now = now
        self.actions = dict((op, []) for op in ACTION_ORDER)
        self.drain_state = {}
        self.draining = []

    def add(self, op, service, server=None, reason=''):
        self.actions[op].append(Action(op, service, server, reason))

    def servers(self, want, have, purge):
        """Plan the real servers of a service in both tables; returns those it will have."""
        wanted = _by_key(want.real_servers)
        present = _by_key(have.real_servers)
        kept = []
        for key, server in wanted.items():
            old = present.get(key)
            if old is None:
                self.add(ADD_SERVER, want, server, 'new')
            elif old != server:
                comeback = old.weight == 0 and (want.key, key) in self.old_drain
                reason = 'undrain' if comeback else _server_changes(old, server)
                self.add(EDIT_SERVER, want, server, reason)
        for key, old in present.items():
            if key not in wanted:
                stays = self.leave(want, have, old) if purge else old
                if stays is not None:
                    kept.append(stays)
        return want.real_servers + tuple(kept)

    def leave(self, want, have, old):
        """A real server that is not wanted any more: delete, drain or keep waiting.
        Returns it as it stays in the table (None once deleted)."""
        entry = (have.key, old.key)
        since = self.old_drain.get(entry)
        connections = sum(have.connections_of(old.key))
        if not self.graceful or have.key.protocol == 'udp':
            self.add(DELETE_SERVER, have, old, 'purge')
        elif old.weight == 0 and connections == 0:
            self.add(DELETE_SERVER, have, old, 'idle')
        elif since is not None and self.drain_timeout and self.now - since >= self.drain_timeout:
            self.add(DELETE_SERVER, have, old, 'drain_timeout')
        else:
            drained = old._replace(weight=0) if old.weight else old  # weight 0
            if old.weight:
                self.add(EDIT_SERVER, want, drained, 'drain')
            # Weight 0 without an entry (set by hand, or state lost): the clock starts now.
            since = self.now if since is None else since
            self.drain_state[entry] = since
            self.draining.append(Draining(have.key, drained, since, connections))
            return drained
        return None


def _by_key(servers):
    return {(rs.address, rs.port): rs for rs in servers}


def _server_changes(old, new):
    # Weight alone is the common edit (and the one a large rollout makes everywhere).
    if old.weight != new.weight and old._replace(weight=new.weight) == new:
        return 'weight'
    return _changed(SERVER_FIELDS, old, new)


def _changed(fields, old, new):
    return ','.join(name for name in fields if getattr(old, name) != getattr(new, name))


def apply_to_table(table, actions):
    """The table after actions (pure): what the kernel holds once they all succeed.

    Edits replace the whole entry; a service edit keeps its real servers (they change
    through their own actions). Also the behaviour a fake backend needs in tests.
    """
    after = dict(table)
    touched = {}  # ServiceKey -> [settings (a VirtualService), {server key: RealServer}, counters]
    last_service = entry = None
    for action in actions:
        service = action.service
        if action.op == DELETE_SERVICE:
            after.pop(service.key, None)
            touched.pop(service.key, None)
            last_service = None
            continue
        if service is not last_service:  # consecutive actions mostly share one service object
            last_service = service
            entry = touched.get(service.key)
            if entry is None:
                base = after.get(service.key)
                entry = touched[service.key] = ([base, _by_key(base.real_servers), base.connections]
                                                if base is not None else [None, {}, {}])
        if action.op in (ADD_SERVICE, EDIT_SERVICE):
            entry[0] = service
        elif action.op in (ADD_SERVER, EDIT_SERVER):
            entry[1][(action.server.address, action.server.port)] = action.server
        elif action.op == DELETE_SERVER:
            entry[1].pop((action.server.address, action.server.port), None)
    for key, (service, servers, connections) in touched.items():
        if service is not None:
            # Counters stay those read: a run changes configuration, not connections.
            after[key] = service.with_servers(tuple(servers.values()), connections)
    return after
