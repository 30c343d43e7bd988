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
import operator
import socket
from dataclasses import field, make_dataclass

from ansible_collections.netlb.ipvs.plugins.module_utils import _address_text
from ansible_collections.netlb.ipvs.plugins.module_utils._errors import IpvsError

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
# The kernel stores timeout * HZ in 32 bits: beyond this it wraps with HZ=1000.
PERSISTENCE_MAX = (2 ** 32 - 1) // 1000
# Persistence engines (IPVS_SVC_ATTR_PE_NAME): the kernel ships one, ip_vs_pe_sip.
PERSISTENCE_ENGINES = ('sip',)
# Tunnel types and checksum modes of a tunnel real server (IP_VS_CONN_F_TUNNEL_TYPE_*,
# IP_VS_TUNNEL_ENCAP_FLAG_*), in kernel number order.
TUNNEL_TYPES = ('ipip', 'gue', 'gre')
TUNNEL_CHECKSUMS = ('none', 'csum', 'remcsum')


class Field(collections.namedtuple('Field', ('name', 'kind', 'default', 'low', 'high', 'choices', 'ipvsadm',
                                             'netlink', 'doc'))):
    """One setting of a virtual service or a real server, described once for every layer.

    name: the model attribute, the module option and the key in ``services[]`` /
    ``real_servers[]``. kind: its Ansible type (int, str, bool, list). default: the model's
    value when the option is not given (None for persistence_netmask and
    persistence_engine: the full prefix length of the family, no engine). low/high: the
    range of an int; choices: the values of a str or list. ipvsadm: its options in
    ``ipvsadm -S -n`` / ``-R`` text, netlink: its attribute and encoding (both also read
    by the backends' tables, see save_format and backends/netlink_family), doc: the module's
    description of it (tests hold the module's DOCUMENTATION to these).

    How to add a field: append it to SERVICE_SETTINGS or SERVER_SETTINGS. The model
    gains the attribute (RealServer, VirtualService are built from these tuples), the
    diff and the planner compare it, validation checks it (a plain int/str/bool by its
    range or choices; rules between fields by hand), the module takes it as a key of
    services[] and as a single-form option. Then give it its ipvsadm spelling in
    save_format (service_words/server_words and the parsers), its entry in
    backends/netlink_family (DEST_SETTINGS for a real server; netlink_encode's
    service_attrs and netlink_decode's _service_settings for a service) and its docs in
    the module's DOCUMENTATION: the tests (test_model, test_save_format, test_netlink,
    test_ipvs_virtual_server) fail until each layer has it.
    """

    __slots__ = ()


def _field(name, kind, default, low=0, high=0, choices=(), ipvsadm=(), netlink='', doc=()):
    return Field(name, kind, default, low, high, tuple(choices), tuple(ipvsadm), netlink, tuple(doc))


# The settings of a virtual service (what an edit replaces), in model order.
SERVICE_SETTINGS = (
    _field('scheduler', 'str', 'wlc', choices=SCHEDULERS, ipvsadm=('-s', '--scheduler'),
           netlink='IPVS_SVC_ATTR_SCHED_NAME, string',
           doc=('The scheduler. Defaults to V(wlc), as in C(ipvsadm).', 'Changing it edits the service in place.')),
    _field('scheduler_flags', 'list', (),
           choices=('sh-fallback', 'sh-port', 'mh-fallback', 'mh-port', 'flag-1', 'flag-2', 'flag-3'),
           ipvsadm=('-b', '--sched-flags'),
           netlink='IPVS_SVC_ATTR_FLAGS bits SCHED1 (*-fallback, flag-1), SCHED2 (*-port, flag-2), SCHED3 (flag-3)',
           doc=('Scheduler flags. V(sh-fallback) and V(sh-port) only with scheduler V(sh); V(mh-fallback) and '
                'V(mh-port) only with V(mh). Defaults to none.',
                'V(flag-1), V(flag-2) and V(flag-3) are the kernel\'s flag bits by number (C(ipvsadm -b flag-N)), '
                'for any scheduler; V(flag-1) and V(flag-2) of V(sh) and V(mh) mean their named flags.')),
    _field('persistence_timeout', 'int', 0, 0, PERSISTENCE_MAX, ipvsadm=('-p', '--persistent'),
           netlink='IPVS_SVC_ATTR_TIMEOUT, u32; IPVS_SVC_ATTR_FLAGS bit PERSISTENT when above 0',
           doc=('Persistence timeout in seconds (0-4294967); V(0) turns persistence off. Defaults to V(0).',)),
    _field('persistence_netmask', 'int', None, 1, 128, ipvsadm=('-M', '--netmask'),
           netlink='IPVS_SVC_ATTR_NETMASK, u32: a mask in network order (IPv4), the prefix length (IPv6)',
           doc=('Persistence granularity as a prefix length, 1-32 for IPv4 and 1-128 for IPv6.',
                'Defaults to the full length (V(32) or V(128)), one client address per entry.',
                'Has no effect without O(persistence_timeout).')),
    _field('persistence_engine', 'str', None, choices=PERSISTENCE_ENGINES, ipvsadm=('--pe',),
           netlink='IPVS_SVC_ATTR_PE_NAME, string; absent for none',
           doc=('Persistence engine (C(ipvsadm --pe)). V(sip) keeps a SIP call on one real server by its Call-ID; '
                'needs O(persistence_timeout) and the C(ip_vs_pe_sip) kernel module. Defaults to none.',)),
    _field('one_packet', 'bool', False, ipvsadm=('-o', '--ops'), netlink='IPVS_SVC_ATTR_FLAGS bit ONEPACKET (0x4)',
           doc=('One-packet scheduling (C(ipvsadm -o)) - every UDP datagram is scheduled on its own, no '
                'connection entry is kept. The kernel applies it to UDP packets only. Defaults to V(false).',)),
)

# The settings of a real server (what an edit replaces), in model order.
SERVER_SETTINGS = (
    _field('weight', 'int', 1, 0, WEIGHT_MAX, ipvsadm=('-w', '--weight'), netlink='IPVS_DEST_ATTR_WEIGHT, u32',
           doc=('Weight, 0-65535. V(0) sends no new connections to the server.',)),
    _field('forwarding', 'str', 'masq', choices=FORWARDING, ipvsadm=('-m', '-g', '-i'),
           netlink='IPVS_DEST_ATTR_FWD_METHOD, u32: masq 0, tunnel 2, route 3',
           doc=('How packets reach the server - V(masq) (NAT), V(route) (direct routing) or V(tunnel) '
                '(encapsulated, see O(real_servers[].tunnel_type)).',)),
    _field('upper_threshold', 'int', 0, 0, THRESHOLD_MAX, ipvsadm=('-x', '--u-threshold'),
           netlink='IPVS_DEST_ATTR_U_THRESH, u32',
           doc=('Connections above which the server gets no new ones; V(0) means no limit.',)),
    _field('lower_threshold', 'int', 0, 0, THRESHOLD_MAX, ipvsadm=('-y', '--l-threshold'),
           netlink='IPVS_DEST_ATTR_L_THRESH, u32',
           doc=('Connections below which an overloaded server gets new ones again; at most '
                'O(real_servers[].upper_threshold).',)),
    _field('tunnel_type', 'str', 'ipip', choices=TUNNEL_TYPES, ipvsadm=('--tun-type',),
           netlink='IPVS_DEST_ATTR_TUN_TYPE, u8: ipip 0, gue 1, gre 2',
           doc=('With O(real_servers[].forwarding=tunnel) - the encapsulation, V(ipip) (IP-in-IP), V(gue) (UDP, '
                'needs O(real_servers[].tunnel_port)) or V(gre). Only V(ipip) for other forwarding methods.',)),
    _field('tunnel_port', 'int', 0, 0, 65535, ipvsadm=('--tun-port',), netlink='IPVS_DEST_ATTR_TUN_PORT, be16',
           doc=('With O(real_servers[].tunnel_type=gue) - the UDP destination port of the tunnel, 1-65535. '
                'V(0) (none) for every other tunnel type.',)),
    _field('tunnel_checksum', 'str', 'none', choices=TUNNEL_CHECKSUMS,
           ipvsadm=('--tun-nocsum', '--tun-csum', '--tun-remcsum'),
           netlink='IPVS_DEST_ATTR_TUN_FLAGS, u16: none 0, csum 1, remcsum 2',
           doc=('With O(real_servers[].tunnel_type=gue) or V(gre) - tunnel checksums, V(none), V(csum) or '
                'V(remcsum) (remote checksum offload, V(gue) only).',)),
)

SERVICE_SETTING_NAMES = tuple(setting.name for setting in SERVICE_SETTINGS)
# One C call for the settings tuple: a no-op plan compares it twice per virtual service.
_SETTINGS_OF = operator.attrgetter(*SERVICE_SETTING_NAMES)
SERVER_SETTING_NAMES = tuple(setting.name for setting in SERVER_SETTINGS)
SERVICE_FIELD = dict((setting.name, setting) for setting in SERVICE_SETTINGS)
SERVER_FIELD = dict((setting.name, setting) for setting in SERVER_SETTINGS)


def canonical_address(text):
    """Return the canonical text of an IPv4/IPv6 address (raises ValueError)."""
    return _address_text.canonical(str(text).strip('[]'))


def address_family(address):
    """4 or 6 for an address in canonical text (canonical_address's: only IPv6 has a colon)."""
    return 6 if ':' in address else 4


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


_RealServerFields = collections.namedtuple('RealServer', ('address', 'port') + SERVER_SETTING_NAMES,
                                           defaults=tuple(setting.default for setting in SERVER_SETTINGS))


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


class _ServiceBehaviour(object):
    """What a VirtualService does; its fields come from SERVICE_SETTINGS (below)."""

    __slots__ = ()

    def __post_init__(self):
        full = 32 if self.key.family == 4 else 128
        object.__setattr__(self, 'scheduler_flags', tuple(sorted(set(self.scheduler_flags))))
        if not self.persistence_timeout or self.persistence_netmask is None:
            object.__setattr__(self, 'persistence_netmask', full)
        # (address, port) lead the tuple and are unique, so plain order is key order.
        object.__setattr__(self, 'real_servers', tuple(sorted(self.real_servers)))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def with_servers(self, real_servers, connections):
        """The same settings with other real servers and counters."""
        changes = dict((name, getattr(self, name)) for name in SERVICE_SETTING_NAMES)
        return VirtualService(key=self.key, real_servers=real_servers, connections=connections, **changes)

    def settings(self):
        """The part of the service an edit changes (everything but real servers), in
        SERVICE_SETTINGS order."""
        return _SETTINGS_OF(self)

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


# A virtual service and its real servers, in canonical form: key, the SERVICE_SETTINGS,
# real_servers, connections. persistence_netmask is a prefix length for both families;
# when persistence is off it has no effect and is kept at the full length, so it never
# causes a diff. connections are live counters, not configuration: (address, port) ->
# (active, inactive) for the real servers a read found (absent means (0, 0)); never
# compared. Built from the table so a new setting needs no edit here.
VirtualService = make_dataclass(
    'VirtualService',
    [('key', 'ServiceKey')]
    + [(setting.name, object, field(default=setting.default)) for setting in SERVICE_SETTINGS]
    + [('real_servers', tuple, field(default=())),
       ('connections', dict, field(default_factory=dict, compare=False, repr=False))],
    bases=(_ServiceBehaviour,), frozen=True, namespace={'__module__': __name__})


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
        return self.test()(key)

    def test(self):
        """This scope's memoised ScopeTest. A run asks the same keys several times (the
        request's validation, the engine's input check, the planner): one test answers
        each key once for all of them."""
        found = self.__dict__.get('_test')
        if found is None:
            found = ScopeTest(self)
            object.__setattr__(self, '_test', found)  # a cache, not a field: eq and hash ignore it
        return found

    def __bool__(self):
        return bool(self.networks or self.fwmarks or self.keys or self.ports)

    @property
    def has_ranges(self):
        """Whether the scope owns more than listed keys (so exclusive can delete services)."""
        return bool(self.networks or self.fwmarks or self.ports)


class ScopeTest(object):
    """The scope test: key -> whether scope owns it, with addresses compared as integers
    and answers memoised, cheap enough to ask for every service of a 5,000-service table
    several times a run (Scope.test() keeps one per scope)."""

    def __init__(self, scope):
        self.scope = scope
        self.answers = {}
        self.networks = [(net.version, int(net.network_address), int(net.netmask)) for net in scope.networks]
        self.ports = [(net.version, int(net.network_address), int(net.netmask), int(first), int(last))
                      for net, first, last in scope.ports]

    def __call__(self, key):
        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = self._test(key)
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

    @classmethod
    def new_servers(cls, service, reason='new'):
        """An add_server Action per real server of service. Built by tuple.__new__ in C,
        not through the constructor's Python frame: a full load makes 50,000 of them;
        the field order is _ActionFields' just above."""
        new = tuple.__new__
        return [new(cls, (ADD_SERVER, service, server, reason)) for server in service.real_servers]

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
