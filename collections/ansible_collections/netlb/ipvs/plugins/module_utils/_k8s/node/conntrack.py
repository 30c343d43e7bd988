# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stale UDP conntrack entries after a real server leaves a service (kubernetes#71514),
and after a UDP service gets its first real server.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

A UDP "connection" lives as long as packets keep coming: a DNS client that keeps
sending from one source port stays pinned to a real server that is gone and is
black-holed until the entry expires. So for every real server the engine removes from
a UDP service, the entries with original destination VIP:port and reply source the
real server are deleted; for a removed UDP service, every entry to VIP:port.

The same client, sending while a UDP service had no endpoint, holds an entry made when
nothing served VIP:port (the packets went to the node's own stack), and keeps it while it
keeps sending. kube-proxy deletes the entries of a UDP service whose endpoints go from none
to some (its cluster, external, load-balancer and NodePort addresses); so does
plan_flows(): every entry to VIP:port of a UDP virtual service with no serving real
server (weight above 0) before the plan and one after, new services included. Cleared
after the IPVS write, like the others: cleared before, the next packet would make the
same stale entry again.

flows(), activated(), plan_flows() and command() are pure; clear_flows() runs one `conntrack -D` per flow (removed
UDP endpoints are few per run). conntrack exits 1 when no entry matched: not an error, so
a flow cleared twice (a run killed after clearing, before saying so) is harmless.
"""

from __future__ import annotations

import collections

from ansible_collections.netlb.ipvs.plugins.module_utils import _command
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model

# conntrack(8) exits 1 with "0 flow entries have been deleted".
RC_NONE_DELETED = 1


class ConntrackError(Exception):
    """conntrack could not be run or refused a deletion."""


class Flow(collections.namedtuple('Flow', ('family', 'address', 'port', 'server', 'server_port'))):
    """Entries to delete: original destination address:port (the VIP), and when server
    is set, reply source server:server_port (the real server that left)."""

    __slots__ = ()

    def as_dict(self):
        result = {'service': model.join_host_port(self.address, self.port)}
        if self.server:
            result['server'] = model.join_host_port(self.server, self.server_port)
        return result


def flows(actions):
    """The Flows the engine's actions leave stale: delete_server on a UDP service
    (that server's entries) and delete_service of a UDP service (all its entries; a
    service deleted whole makes no delete_server actions of its own). Deduplicated,
    in action order."""
    result, seen = [], set()
    for action in actions:
        key = action.service.key
        if key.protocol != 'udp':
            continue
        if action.op == model.DELETE_SERVER:
            flow = Flow(key.family, key.address, key.port, action.server.address, action.server.port)
        elif action.op == model.DELETE_SERVICE:
            flow = Flow(key.family, key.address, key.port, '', 0)
        else:
            continue
        if flow not in seen:
            seen.add(flow)
            result.append(flow)
    return result


def activated(before, after):
    """The Flows (every entry to VIP:port) of the UDP virtual services that serve in after
    and did not in before (absent, or no real server with a weight above 0). before and
    after: {ServiceKey: VirtualService}, a plan's tables. Sorted by key."""
    result = []
    for key in sorted(after):
        if key.protocol == 'udp' and _serving(after[key]) and not (key in before and _serving(before[key])):
            result.append(Flow(key.family, key.address, key.port, '', 0))
    return result


def _serving(service):
    return any(server.weight for server in service.real_servers)


def plan_flows(plan):
    """The Flows a plan (anything with actions, before and after: the engine's Plan or
    Result) leaves stale: flows() of its actions, then activated(), each once."""
    result = flows(plan.actions)
    return result + [flow for flow in activated(plan.before, plan.after) if flow not in result]


def command(conntrack, flow):
    """argv deleting flow's entries."""
    argv = [conntrack, '-D', '-f', 'ipv6' if flow.family == 6 else 'ipv4', '-p', 'udp',
            '--orig-dst', flow.address, '--orig-port-dst', str(flow.port)]
    if flow.server:
        argv += ['--reply-src', flow.server, '--reply-port-src', str(flow.server_port)]
    return argv


def clear(runner, actions, check_mode=False):
    """Delete the stale entries of actions' removed UDP endpoints; returns the Flows
    (all of them in check mode, nothing run). Raises ConntrackError."""
    return clear_flows(runner, flows(actions), check_mode)


def clear_flows(runner, todo, check_mode=False):
    """Delete the entries of the Flows todo (one run each); returns them (all of them in
    check mode, nothing run). Raises ConntrackError."""
    todo = list(todo)
    if check_mode or not todo:
        return todo
    try:
        conntrack = runner.which('conntrack')
        for flow in todo:
            runner.run(command(conntrack, flow), ok_rc=(0, RC_NONE_DELETED), timeout=_command.NODE_TIMEOUT)
    except _command.CommandError as exc:
        raise ConntrackError('cannot delete stale UDP conntrack entries: %s' % exc)
    return todo
