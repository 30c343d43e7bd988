# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the Kubernetes proxy made on this node, kept between runs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Two things only the proxy can know: which virtual services outside its fixed scope
(external and load-balancer IPs) it created, so a stale one is removed once the cluster
no longer asks for it; and which addresses on the dummy interface it bound, so it never
removes an operator's. A third it must not forget: the UDP conntrack flows a run left
stale and has not cleared yet. A small JSON document, written atomically (_json_state.py).

A run records before it changes (proxy.py, "Order, and why"): the union of what it held
and what it creates, and the flows it will leave stale; and shrinks the record once done.
A run killed in between leaves a superset, which the next run owns and cleans up.

Format: version 2 ({"version", "services", "addresses", "udp_flows"}); version 1 (no
udp_flows, written by earlier releases) is read as having none queued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

from ansible_collections.netlb.ipvs.plugins.module_utils import _json_state, _run_lock
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import (
    ServiceKey,
    address_family,
    canonical_address,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node.conntrack import Flow
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import STATE_PATH

DEFAULT_PATH = STATE_PATH  # k8s_service_proxy's state_path
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# Seconds a run waits for another holding the state (the run lock serialises the module and
# netlb-ipvs already; this one bounds a run that holds the state without it).
LOCK_WAIT = 60
LOCK_HOLDER = 'netlb.ipvs k8s_service_proxy sync'


class StateError(IpvsError):
    """The state file cannot be read, parsed or written."""


@dataclasses.dataclass(frozen=True)
class ProxyState:
    """services: ServiceKeys the proxy owns; addresses: dummy-interface addresses it bound;
    udp_flows: conntrack.Flows left stale and not cleared yet."""

    services: frozenset = frozenset()
    addresses: frozenset = frozenset()
    udp_flows: frozenset = frozenset()


def dumps(state):
    """State -> JSON text; sorted, so an unchanged state gives the same bytes."""
    document = {
        'version': FORMAT_VERSION,
        'services': [[key.protocol, key.address, key.port] for key in sorted(state.services)],
        'addresses': sorted(state.addresses),
        'udp_flows': [list(flow) for flow in sorted(state.udp_flows)],
    }
    return json.dumps(document, sort_keys=True) + '\n'


def loads(text):
    """JSON text -> ProxyState (version 1 or 2). Raises StateError on anything unexpected."""
    return _json_state.parse(text, READABLE_VERSIONS, _state, 'proxy state', StateError)


def _state(document):
    services = frozenset(ServiceKey.tcp_udp(protocol, address, port)
                         for protocol, address, port in document['services'])
    addresses = frozenset(canonical_address(address) for address in document['addresses'])
    flows = frozenset(_flow(entry) for entry in document['udp_flows']) if document['version'] > 1 else frozenset()
    return ProxyState(services=services, addresses=addresses, udp_flows=flows)


def _flow(entry):
    """[family, address, port, server, server_port] -> Flow; ValueError when it is not one."""
    family, address, port, server, server_port = entry
    address = canonical_address(address)
    server = canonical_address(server) if server else ''
    if address_family(address) != family or (server and address_family(server) != family):
        raise ValueError('udp_flows: %r mixes address families' % (entry,))
    for number in (port, server_port):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
            raise ValueError('udp_flows: %r has a port out of range' % (entry,))
    return Flow(family, address, port, server, server_port)


class StateStore(object):
    """The state in a file; lock() serialises whole runs (two proxies on one node would
    each remove what the other just made)."""

    def __init__(self, path=DEFAULT_PATH):
        self.path = path
        self._file = _json_state.JsonStateFile(path, 'proxy state', StateError)

    def load(self):
        return self._file.load(loads, ProxyState())

    def save(self, state):
        self._file.save(dumps(state))

    def lock(self, what=LOCK_HOLDER, wait=None):
        """A context manager holding the sibling path + '.lock', with the run lock's
        mechanism (_run_lock.py: the holder says who it is). Raises _run_lock.LockBusy
        naming the holder after wait seconds (None: LOCK_WAIT), FileError when the file
        cannot be made."""
        return _run_lock.held(what, path=self._file.lock_path, wait=LOCK_WAIT if wait is None else wait)


class MemoryStateStore(object):
    """The state in memory: for a long-running watcher, and for tests."""

    def __init__(self, state=None):
        self.state = state or ProxyState()
        self.saves = 0

    def load(self):
        return self.state

    def save(self, state):
        self.state = state
        self.saves += 1

    @contextlib.contextmanager
    def lock(self, what=LOCK_HOLDER, wait=None):
        yield
