# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The IPVS table as values: virtual services, real servers, scope.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Everything here is immutable and canonical (addresses in compressed text form, flags
sorted, real servers sorted), so two tables compare equal exactly when the kernel
would hold the same configuration. Connection counters ride along on VirtualService
but never take part in equality. No I/O.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import socket

PROTOCOLS = ('tcp', 'udp', 'sctp')
FWMARK = 'fwmark'

# Kernel forwarding methods (IP_VS_CONN_F_*): masq=0, route (direct routing)=3, tunnel=2.
FORWARDING = ('masq', 'route', 'tunnel')

SCHEDULERS = ('rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos')

# Scheduler flags the kernel knows (IP_VS_SVC_F_SCHED1..3) and which scheduler reads them.
SCHEDULER_FLAGS = {
    'sh': ('sh-fallback', 'sh-port'),
    'mh': ('mh-fallback', 'mh-port'),
}

WEIGHT_MAX = 65535
THRESHOLD_MAX = 2 ** 32 - 1
FWMARK_MAX = 2 ** 32 - 1


def canonical_address(text):
    """Return the canonical text of an IPv4/IPv6 address (raises ValueError)."""
    return str(ipaddress.ip_address(str(text).strip('[]')))


def address_family(address):
    """4 or 6 for an address in canonical text."""
    return ipaddress.ip_address(address).version


_ServiceKeyFields = collections.namedtuple('ServiceKey', ('protocol', 'address', 'port', 'fwmark', 'family'),
                                           defaults=('', 0, 0, 4))


class ServiceKey(_ServiceKeyFields):
    """What identifies a virtual service in the kernel.

    protocol is tcp/udp/sctp (address and port set) or 'fwmark' (fwmark set, address ''
    and port 0). family is 4 or 6; a fwmark service has one too (ipvsadm -f N -6).
    A tuple: tables are dicts keyed by it, so hashing and comparing stay in C.
    """

    __slots__ = ()

    @classmethod
    def tcp_udp(cls, protocol, address, port):
        address = canonical_address(address)
        return cls(protocol, address, int(port), 0, address_family(address))

    @classmethod
    def mark(cls, fwmark, family=4):
        return cls(FWMARK, '', 0, int(fwmark), int(family))

    @property
    def is_fwmark(self):
        return self.protocol == FWMARK

    @property
    def endpoint(self):
        """'10.0.0.1:80', '[fd00::1]:80' or '10' (fwmark): the ipvsadm spelling."""
        if self.is_fwmark:
            return str(self.fwmark)
        return join_host_port(self.address, self.port)

    def __str__(self):
        if self.is_fwmark:
            return 'fwmark %d%s' % (self.fwmark, ' ipv6' if self.family == 6 else '')
        return '%s %s' % (self.protocol, self.endpoint)


def join_host_port(address, port):
    if ':' in address:
        return '[%s]:%d' % (address, port)
    return '%s:%d' % (address, port)


_RealServerFields = collections.namedtuple(
    'RealServer', ('address', 'port', 'weight', 'forwarding', 'upper_threshold', 'lower_threshold'),
    defaults=(1, 'masq', 0, 0))


class RealServer(_RealServerFields):
    """A destination of a virtual service: its configuration only.

    A tuple, so that building, sorting and comparing 50,000 of them (a read, a no-op
    plan) happens in C. Live connection counters are not configuration: they are kept
    on the VirtualService (``connections``).
    """

    __slots__ = ()

    @property
    def key(self):
        return (self.address, self.port)

    @property
    def endpoint(self):
        return join_host_port(self.address, self.port)

    def replace(self, **changes):
        return self._replace(**changes)


NO_CONNECTIONS = (0, 0)


@dataclasses.dataclass(frozen=True)
class VirtualService:
    """A virtual service and its real servers, in canonical form.

    persistence_netmask is a prefix length for both families. When persistence is off
    the netmask has no effect and is kept at the full length, so it never causes a diff.
    """

    key: ServiceKey
    scheduler: str = 'wlc'
    scheduler_flags: tuple = ()
    persistence_timeout: int = 0
    persistence_netmask: int = 32
    real_servers: tuple = ()
    # Live counters, not configuration: (address, port) -> (active, inactive) for the
    # real servers a read found; absent means (0, 0). Never compared.
    connections: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        full = 32 if self.key.family == 4 else 128
        object.__setattr__(self, 'scheduler_flags', tuple(sorted(set(self.scheduler_flags))))
        if not self.persistence_timeout:
            object.__setattr__(self, 'persistence_netmask', full)
        # (address, port) lead the tuple and are unique, so plain order is key order.
        object.__setattr__(self, 'real_servers', tuple(sorted(self.real_servers)))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def settings(self):
        """The part of the service an edit changes (everything but real servers)."""
        return (self.scheduler, self.scheduler_flags, self.persistence_timeout, self.persistence_netmask)

    def connections_of(self, key):
        """(active, inactive) of the real server at key (address, port)."""
        return self.connections.get(key, NO_CONNECTIONS)

    def server(self, key):
        for rs in self.real_servers:
            if rs.key == key:
                return rs
        return None

    @property
    def servers_by_key(self):
        return dict((rs.key, rs) for rs in self.real_servers)


def table_of(services):
    """A table is a dict ServiceKey -> VirtualService."""
    return dict((svc.key, svc) for svc in services)


@dataclasses.dataclass(frozen=True)
class Scope:
    """What a caller owns: services whose VIP is in one of networks, whose fwmark is in
    one of fwmark ranges, whose VIP is in a network of ports and whose port is in that
    entry's range (any protocol), or whose key is listed. Everything else is never touched.

    Membership is answered in one place, ScopeTest; contains() asks it.
    """

    networks: tuple = ()
    fwmarks: tuple = ()  # tuple of (first, last) inclusive
    keys: frozenset = frozenset()
    ports: tuple = ()  # tuple of (ip_network, first_port, last_port), inclusive: NodePorts on node addresses

    def contains(self, key):
        return ScopeTest(self, memo=False)(key)

    def __bool__(self):
        return bool(self.networks or self.fwmarks or self.keys or self.ports)

    @property
    def has_ranges(self):
        """Whether the scope owns more than listed keys (so exclusive can delete services)."""
        return bool(self.networks or self.fwmarks or self.ports)


class ScopeTest(object):
    """The scope test: key -> whether scope owns it, with addresses compared as integers
    and (memo=True, for one plan) answers memoised, cheap enough to ask for every service
    of a 5,000-service table."""

    def __init__(self, scope, memo=True):
        self.scope = scope
        self.answers = {} if memo else None
        self.networks = [(net.version, int(net.network_address), int(net.netmask)) for net in scope.networks]
        self.ports = [(net.version, int(net.network_address), int(net.netmask), int(first), int(last))
                      for net, first, last in scope.ports]

    def __call__(self, key):
        answers = self.answers
        answer = None if answers is None else answers.get(key)
        if answer is None:
            answer = self._test(key)
            if answers is not None:
                answers[key] = answer
        return answer

    def _test(self, key):
        if key in self.scope.keys:
            return True
        if key.is_fwmark:
            return any(first <= key.fwmark <= last for first, last in self.scope.fwmarks)
        family = socket.AF_INET6 if key.family == 6 else socket.AF_INET
        value = int.from_bytes(socket.inet_pton(family, key.address), 'big')
        version, port = key.family, key.port
        return (any(net_version == version and value & mask == network
                    for net_version, network, mask in self.networks)
                or any(net_version == version and value & mask == network and first <= port <= last
                       for net_version, network, mask, first, last in self.ports))


class IpvsError(Exception):
    """Base of the errors this package raises on purpose; modules turn them into fail_json."""


class ValidationError(IpvsError):
    """Bad input. Carries every problem found, each starting with its field path."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super(ValidationError, self).__init__('; '.join(self.problems))


# Action kinds in the order a run applies them (see plan.py for why).
ADD_SERVICE = 'add_service'
EDIT_SERVICE = 'edit_service'
ADD_SERVER = 'add_server'
EDIT_SERVER = 'edit_server'
DELETE_SERVER = 'delete_server'
DELETE_SERVICE = 'delete_service'
ACTION_ORDER = (ADD_SERVICE, EDIT_SERVICE, ADD_SERVER, EDIT_SERVER, DELETE_SERVER, DELETE_SERVICE)


_ActionFields = collections.namedtuple('Action', ('op', 'service', 'server', 'reason'), defaults=(None, ''))


class Action(_ActionFields):
    """One kernel change. service is the complete desired service for add/edit (the
    kernel's "set" replaces the whole entry) and the current one for deletes; server
    likewise for the *_server kinds. reason says why ('drain', 'weight', ...).
    A tuple: a full load plans one per rule, 55,000 for 5,000 services."""

    __slots__ = ()

    def as_dict(self):
        result = {'op': self.op, 'service': str(self.service.key)}
        if self.server is not None:
            result['server'] = self.server.endpoint
            result['weight'] = self.server.weight
        if self.reason:
            result['reason'] = self.reason
        return result


class RefusedError(IpvsError):
    """A caller's review of the plan refused it (ReconcileOptions.review): nothing was applied."""


class BackendError(IpvsError):
    """The kernel or ipvsadm refused something, or could not be reached.

    evidence: what a person needs to see why, for the module result besides msg, such
    as {'cmd': ..., 'rc': ..., 'stderr': ...} of a failed ipvsadm call.
    """

    def __init__(self, message, evidence=None):
        self.evidence = dict(evidence or {})
        super(BackendError, self).__init__(message)


class ApplyError(BackendError):
    """An action failed midway: applied lists what the kernel took before it."""

    def __init__(self, message, applied=(), failed=None, evidence=None):
        self.applied = list(applied)
        self.failed = failed
        super(ApplyError, self).__init__(message, evidence)
