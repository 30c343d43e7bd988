# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The dummy interface (kube-ipvs0) that holds the virtual service addresses.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

The interface is created if missing (type dummy, left DOWN as kube-proxy leaves it: a
local route is made for each address all the same, and nothing answers ARP for it).
Its addresses become the desired set: /32 or /128 each, added with NLM_F_REPLACE;
removed are only the addresses this toolkit owns (the caller's owned set, from its
state file) and no longer wants. It owns what it bound and what it wanted and found
already there (a Service's address kube-proxy bound before a hand-over: adopted, so it
goes with its Service). Unlike kube-proxy, an address an operator put on the interface
and no Service wants is never removed.

All changes go to the kernel as rtnetlink requests in batched send()s, never a process
per address. plan() is pure; link_request()/address_request() build the messages;
ensure() is the only I/O and, in check mode, reads but writes nothing.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import os
import socket

from ansible_collections.netlb.ipvs.plugins.module_utils import _address_text
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, route
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.node import addresses
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import DUMMY_INTERFACE

IFNAMSIZ = 16


class DummyError(Exception):
    """The dummy interface could not be read or changed. interface/address name what;
    errno/kernel_message carry the kernel's answer when there is one."""

    def __init__(self, message, interface, address=None, code=None, kernel_message=''):
        self.interface = interface
        self.address = address
        self.errno = code
        self.kernel_message = kernel_message
        super(DummyError, self).__init__(message)


class DummyResult(collections.namedtuple('DummyResult', ('interface', 'created', 'added', 'removed', 'owned'))):
    """What ensure() did (or, in check mode, would do): created (bool), added and
    removed (sorted address texts), owned (frozenset: the addresses this toolkit now
    holds on the interface; store it for the next run's owned argument)."""

    __slots__ = ()

    @property
    def changed(self):
        return bool(self.created or self.added or self.removed)


def canonical(address):
    """An address text in canonical form ('fd00:0::1' -> 'fd00::1'); a /32 or /128
    suffix is accepted, any other prefix length is an error."""
    text = str(address)
    if '/' in text:
        network = ipaddress.ip_network(text, strict=True)
        if network.prefixlen != network.max_prefixlen:
            raise ValueError('%s: a dummy interface address must be a single address (/32 or /128)' % text)
        return str(network.network_address)
    return _address_text.canonical(text)


def plan(current, desired, owned):
    """(to add, to remove) as sorted lists, and the owned set afterwards.

    current: addresses on the interface now; desired: addresses wanted; owned: the
    addresses this toolkit owned after the previous run. Only owned addresses are
    removed; every desired address is owned afterwards (a present one is adopted), and
    an address present but neither owned nor desired (an operator's) is left alone.
    """
    current, desired, owned = (frozenset(canonical(a) for a in group) for group in (current, desired, owned))
    add = desired - current
    remove = (current & owned) - desired
    owned_after = desired
    return _sorted(add), _sorted(remove), owned_after


def _sorted(texts):
    return sorted(texts, key=lambda text: (ipaddress.ip_address(text).version, ipaddress.ip_address(text)))


def link_request(name):
    """(type, body, flags) creating dummy interface name (fails with EEXIST if it exists)."""
    body = (route.IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + core.string(route.IFLA_IFNAME, name)
            + core.nested(route.IFLA_LINKINFO, core.string(route.IFLA_INFO_KIND, 'dummy')))
    return route.RTM_NEWLINK, body, route.NLM_F_CREATE | route.NLM_F_EXCL


def address_request(kind, index, address):
    """(type, flags, body) adding (RTM_NEWADDR) or deleting (RTM_DELADDR) address as a
    /32 or /128 on interface index. IPv6 addresses skip duplicate address detection:
    a host address on a down dummy has no neighbour to clash with."""
    ip = ipaddress.ip_address(address)
    family = route.FAMILIES[ip.version]
    flags = route.IFA_F_NODAD if ip.version == 6 else 0
    body = (route.IFADDRMSG.pack(family, ip.max_prefixlen, flags, route.RT_SCOPE_UNIVERSE, index)
            + core.attr(route.IFA_LOCAL, ip.packed) + core.attr(route.IFA_ADDRESS, ip.packed))
    if kind == route.RTM_NEWADDR:
        body += core.u32(route.IFA_FLAGS, flags)
        return kind, route.NLM_F_CREATE | route.NLM_F_REPLACE, body
    return kind, 0, body


def parse_link(body):
    """(index, kind) of an RTM_NEWLINK answer; kind '' when the link has no LINKINFO."""
    _family, _type, index, _flags, _change = route.IFINFOMSG.unpack_from(body, 0)
    attrs = core.parse_attrs(body, route.IFINFOMSG.size)
    info = attrs.get(route.IFLA_LINKINFO)
    kind = core.get_string(core.parse_attrs(info), route.IFLA_INFO_KIND) if info else ''
    return index, kind


def _kernel_error(action, interface, address, exc):
    detail = os.strerror(exc.errno) + (' (%s)' % exc.text if getattr(exc, 'text', '') else '')
    where = 'address %s on %s' % (address, interface) if address else 'interface %s' % interface
    return DummyError('cannot %s %s: %s' % (action, where, detail), interface, address, exc.errno,
                      getattr(exc, 'text', ''))


def _find(sock, interface):
    """(index, kind) of interface, or None when it does not exist."""
    body = route.IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + core.string(route.IFLA_IFNAME, interface)
    try:
        replies = sock.get(route.RTM_GETLINK, body)
    except core.NetlinkError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise _kernel_error('read', interface, None, exc)
    for kind, reply in replies:
        if kind == route.RTM_NEWLINK:
            return parse_link(reply)
    return None


def _addresses_of(sock, index):
    bodies = []
    for family in (socket.AF_INET, socket.AF_INET6):
        bodies.extend(body for kind, body in sock.dump(route.RTM_GETADDR, route.IFADDRMSG.pack(family, 0, 0, 0, 0))
                      if kind == route.RTM_NEWADDR)
    # ifaddrmsg's last field is the interface index: only this interface's are parsed.
    own = [body for body in bodies if route.IFADDRMSG.unpack_from(body, 0)[4] == index]
    return set(item.address for item in addresses.parse_addresses(own, {}))


def ensure(desired, owned, interface=DUMMY_INTERFACE, check_mode=False, sock=None, current=None):
    """Make interface a dummy holding the desired addresses; see the module doc string.

    desired, owned: iterables of address texts (owned: what the previous run's
    DummyResult.owned said). current: the interface's addresses when the caller has
    just dumped them (the node's own read, addresses.Snapshot.on_interface), else
    None and they are dumped here. Returns a DummyResult, the same in check mode as
    the real run would give. Raises DummyError naming the interface (and address) with
    the kernel's message; on a refused address the others of the batch are applied.
    """
    if not interface or len(interface) >= IFNAMSIZ or '/' in interface or interface.strip() != interface:
        raise DummyError('invalid interface name %r' % (interface,), interface)
    desired = [canonical(a) for a in desired]
    own = sock is None
    try:
        sock = route.RtnlSocket() if own else sock
    except core.ProtocolError as exc:
        raise DummyError('cannot manage interface %s: %s' % (interface, exc), interface)
    try:
        return _ensure(sock, interface, desired, owned, check_mode, current)
    except core.ProtocolError as exc:
        raise DummyError('cannot manage interface %s: %s' % (interface, exc), interface)
    finally:
        if own:
            sock.close()


def _ensure(sock, interface, desired, owned, check_mode, current):
    found = _find(sock, interface)
    created = found is None
    if found is not None and found[1] != 'dummy':
        raise DummyError('interface %s exists and is not a dummy interface (type %s)' % (interface, found[1] or 'unknown'),
                         interface)
    if found is None:
        current = set()
    elif current is None:
        try:
            current = _addresses_of(sock, found[0])
        except core.NetlinkError as exc:
            raise _kernel_error('read the addresses of', interface, None, exc)
    add, remove, owned_after = plan(current, desired, owned)
    result = DummyResult(interface, created, add, remove, owned_after)
    if check_mode or not result.changed:
        return result
    if created:
        try:
            sock.get(*link_request(interface))
        except core.NetlinkError as exc:
            raise _kernel_error('create', interface, None, exc)
        found = _find(sock, interface)
        if found is None:
            raise DummyError('interface %s was created but cannot be found' % interface, interface)
    requests = ([address_request(route.RTM_NEWADDR, found[0], a) for a in add]
                + [address_request(route.RTM_DELADDR, found[0], a) for a in remove])
    errors = sock.batch(requests)
    if errors:
        index, code, text = errors[0]
        action, address = ('add', add[index]) if index < len(add) else ('remove', remove[index - len(add)])
        exc = core.NetlinkError(code, text)
        error = _kernel_error(action, interface, address, exc)
        if len(errors) > 1:
            error.args = ('%s (and %d more refused)' % (error.args[0], len(errors) - 1),)
        raise error
    return result
