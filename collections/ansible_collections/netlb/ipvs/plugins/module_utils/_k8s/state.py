# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the Kubernetes proxy made on this node, kept between runs.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Two things only the proxy can know: which virtual services outside its fixed scope
(external and load-balancer IPs) it created, so a stale one is removed once the cluster
no longer asks for it; and which addresses on the dummy interface it bound, so it never
removes an operator's. A small JSON document, written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

from ansible_collections.netlb.ipvs.plugins.module_utils._files import (
    FileError,
    locked,
    make_parent_directory,
    read_text,
    write_atomic,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.model import IpvsError, ServiceKey, canonical_address

DEFAULT_PATH = '/var/lib/netlb-ipvs/k8s-service-proxy.json'
FORMAT_VERSION = 1


class StateError(IpvsError):
    """The state file cannot be read, parsed or written."""


@dataclasses.dataclass(frozen=True)
class ProxyState:
    """services: ServiceKeys the proxy owns; addresses: dummy-interface addresses it bound."""

    services: frozenset = frozenset()
    addresses: frozenset = frozenset()


def dumps(state):
    """State -> JSON text; sorted, so an unchanged state gives the same bytes."""
    document = {
        'version': FORMAT_VERSION,
        'services': [[key.protocol, key.address, key.port] for key in sorted(state.services)],
        'addresses': sorted(state.addresses),
    }
    return json.dumps(document, sort_keys=True) + '\n'


def loads(text):
    """JSON text -> ProxyState. Raises StateError on anything unexpected."""
    try:
        document = json.loads(text)
        if document.get('version') != FORMAT_VERSION:
            raise ValueError('unknown version %r' % document.get('version'))
        services = frozenset(ServiceKey.tcp_udp(protocol, address, port)
                             for protocol, address, port in document['services'])
        addresses = frozenset(canonical_address(address) for address in document['addresses'])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateError('proxy state is not valid: %s' % exc)
    return ProxyState(services=services, addresses=addresses)


class StateStore(object):
    """The state in a file; lock() serialises whole runs (two proxies on one node would
    each remove what the other just made)."""

    def __init__(self, path=DEFAULT_PATH):
        self.path = path

    def load(self):
        try:
            text = read_text(self.path)
        except FileError as exc:
            raise StateError(str(exc))
        if text is None:
            return ProxyState()
        try:
            return loads(text)
        except StateError as exc:
            raise StateError('%s: %s' % (self.path, exc))

    def save(self, state):
        try:
            make_parent_directory(self.path)
            write_atomic(self.path, dumps(state), mode=0o644)
        except FileError as exc:
            raise StateError('cannot save proxy state: %s' % exc)

    def lock(self):
        """A context manager; raises FileError when the lock file cannot be made."""
        return locked(self.path)


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
    def lock(self):
        yield
