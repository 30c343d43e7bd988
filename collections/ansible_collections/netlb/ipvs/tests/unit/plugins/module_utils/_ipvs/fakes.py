# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test helpers shared by the planner, engine and module tests: tables written as
``ipvsadm -S -n`` text, a one-line spelling of actions, an in-memory Backend, and the
real netlink backend's error on a node without IPVS."""

from __future__ import annotations

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model, save_format
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.base import Backend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink import NetlinkBackend
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.plan import apply_to_table


def table(text, connections=None):
    """A table from `ipvsadm -S -n` lines (leading spaces ignored). connections maps
    'service server' (e.g. 'tcp 10.0.0.1:80 10.1.0.1:80') to (active, inactive)."""
    result = save_format.parse('\n'.join(line.strip() for line in text.strip().splitlines()))
    for name, (active, inactive) in (connections or {}).items():
        service_name, server_name = name.rsplit(' ', 1)
        key = next(key for key in result if str(key) == service_name)
        service = result[key]
        if not any(rs.endpoint == server_name for rs in service.real_servers):
            raise KeyError(name)
        server = next(rs for rs in service.real_servers if rs.endpoint == server_name)
        result[key] = service.replace(connections={**service.connections, server.key: (active, inactive)})
    return result


def no_ipvs_error():
    """The BackendError the real netlink backend raises on a node whose kernel has no
    IPVS (the backends' fake kernel with ip_vs not loaded), for module tests whose fake
    get_backend must fail as the real one does."""
    from ansible_collections.netlb.ipvs.tests.unit.plugins.module_utils._ipvs.backends.conftest import FakeKernel

    kernel = FakeKernel()
    kernel.loaded = False
    try:
        NetlinkBackend(sock=kernel).probe()
    except model.BackendError as exc:
        return exc
    raise AssertionError('the netlink backend opened a kernel without IPVS')


def key(name):
    """'tcp 10.0.0.1:80' / 'fwmark 10' / 'fwmark 10 ipv6' -> ServiceKey."""
    words = name.split()
    if words[0] == 'fwmark':
        return model.ServiceKey.mark(int(words[1]), 6 if words[-1] == 'ipv6' else 4)
    address, port = save_format.split_host_port(words[1])
    return model.ServiceKey.tcp_udp(words[0], address, port)


def drain(entries):
    """{'tcp 10.0.0.1:80 10.1.0.1:80': since} -> the planner's drain state."""
    state = {}
    for name, since in entries.items():
        service_name, server_name = name.rsplit(' ', 1)
        state[(key(service_name), save_format.split_host_port(server_name))] = since
    return state


def drain_names(state):
    """The inverse of drain(), for readable assertions."""
    return dict(('%s %s' % (service, model.join_host_port(*server)), since)
                for (service, server), since in state.items())


def brief(action):
    """'op service [server wN] reason': one action on one line."""
    words = [action.op, str(action.service.key)]
    if action.server is not None:
        words += [action.server.endpoint, 'w%d' % action.server.weight]
    if action.reason:
        words.append(action.reason)
    return ' '.join(words)


class FakeBackend(Backend):
    """The kernel table in memory. Refuses what the kernel refuses (adding what exists,
    changing what does not), and any action for which refuse(action) returns a message."""

    name = 'fake'

    def __init__(self, table=None, check_mode=False, refuse=None):
        super(FakeBackend, self).__init__(check_mode=check_mode)
        self.table = dict(table or {})
        self.refuse = refuse
        self.reads = 0
        self.applied = []

    def read(self):
        self.reads += 1
        return dict(self.table)

    def _apply(self, actions):
        done = []
        for action in actions:
            message = self._kernel_says(action) or (self.refuse(action) if self.refuse else None)
            if message:
                raise model.ApplyError('%s: %s' % (brief(action), message), applied=done, failed=action)
            self.table = apply_to_table(self.table, [action])
            done.append(action)
            self.applied.append(action)

    def _kernel_says(self, action):
        service = self.table.get(action.service.key)
        if action.op == model.ADD_SERVICE:
            return 'File exists' if service is not None else None
        if service is None:
            return 'No such process'
        if action.op in (model.EDIT_SERVICE, model.DELETE_SERVICE):
            return None
        exists = service.server(action.server.key) is not None
        if action.op == model.ADD_SERVER:
            return 'File exists' if exists else None
        return None if exists else 'No such file or directory'
