# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node's own addresses: every local address, the primary one per family, and
whether an address sits on an interface other than the dummy.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Read through rtnetlink (RTM_GETADDR and RTM_GETROUTE dumps on a stdlib socket) rather
than `ip -j addr show`: no process to start, no dependency on iproute2's JSON format,
and the same codec the dummy interface code writes with. Parsing (parse_addresses,
parse_routes) and choosing (local_addresses, primary_addresses, on_other_interface) are
pure and tested with dumps captured on the lab; read() is the only I/O.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core, route
from ansible_collections.netlb.ipvs.plugins.module_utils._k8s.option_table import DUMMY_INTERFACE

_ATTRIBUTE = struct.Struct('=HH')  # nlattr: length, type
_U32 = struct.Struct('=I')


class Address(collections.namedtuple('Address', ('interface', 'family', 'address', 'prefixlen', 'scope', 'flags'))):
    """One address of the node: interface name, family 4/6, canonical address text,
    prefix length, rtnetlink scope (0 global, 253 link, 254 host) and IFA_F_* flags."""

    __slots__ = ()

    @property
    def usable(self):
        """Neither tentative (DAD running), failed DAD nor deprecated."""
        return not self.flags & (route.IFA_F_TENTATIVE | route.IFA_F_DADFAILED | route.IFA_F_DEPRECATED)


class Route(collections.namedtuple('Route', ('family', 'dst_len', 'table', 'type', 'priority', 'oif', 'prefsrc'))):
    """One route as far as choosing a primary address needs: family 4/6, destination
    prefix length, table, route type, metric, output interface index (0 when
    multipath) and preferred source address text ('' when none)."""

    __slots__ = ()


def parse_addresses(bodies, names):
    """Addresses from RTM_NEWADDR bodies (ifaddrmsg + attributes); names maps interface
    index -> name (an index missing from it is named '#<index>')."""
    result = []
    header, families = route.IFADDRMSG.unpack_from, route.AF_TO_FAMILY
    for body in bodies:
        family, prefixlen, flags, scope, index = header(body, 0)
        if family not in families:
            continue
        raw, wide_flags = _address_attributes(body)
        if raw is None:
            continue
        result.append(Address(names.get(index, '#%d' % index), families[family], route.address_text(family, raw),
                              prefixlen, scope, flags if wide_flags is None else wide_flags))
    return result


def _address_attributes(body):
    """(the address, IFA_FLAGS or None) of one RTM_NEWADDR body. The address is IFA_LOCAL,
    else IFA_ADDRESS (the peer on point-to-point links); IFA_FLAGS holds the flags the
    8-bit header field cannot. One walk without a dict: a node with thousands of Service
    addresses parses them at every resync."""
    local = peer = wide_flags = None
    offset, end = route.IFADDRMSG.size, len(body)
    attribute, mask = _ATTRIBUTE.unpack_from, core.NLA_TYPE_MASK
    while offset + 4 <= end:
        length, kind = attribute(body, offset)
        if length < 4 or offset + length > end:
            raise core.ProtocolError('bad attribute length %d at offset %d' % (length, offset))
        kind &= mask
        if kind == route.IFA_LOCAL:
            local = body[offset + 4:offset + length]
        elif kind == route.IFA_ADDRESS:
            peer = body[offset + 4:offset + length]
        elif kind == route.IFA_FLAGS and length >= 8:
            wide_flags = _U32.unpack_from(body, offset + 4)[0]
        offset += (length + 3) & ~3
    return local or peer, wide_flags


def parse_routes(bodies):
    """Routes from RTM_NEWROUTE bodies (rtmsg + attributes)."""
    result = []
    for body in bodies:
        (family, dst_len, _src_len, _tos, table, _proto, _scope, kind,
         _flags) = route.RTMSG.unpack_from(body, 0)
        if family not in route.AF_TO_FAMILY:
            continue
        attrs = core.parse_attrs(body, route.RTMSG.size)
        prefsrc = attrs.get(route.RTA_PREFSRC)
        result.append(Route(route.AF_TO_FAMILY[family], dst_len, core.get_u32(attrs, route.RTA_TABLE, table), kind,
                            core.get_u32(attrs, route.RTA_PRIORITY), core.get_u32(attrs, route.RTA_OIF),
                            route.address_text(family, prefsrc) if prefsrc else ''))
    return result


def local_addresses(addresses):
    """Every local address as (interface, address text), in kernel order: what
    NodeContext.addresses holds."""
    return tuple((item.interface, item.address) for item in addresses)


def primary_addresses(addresses, routes, names, dummy_interface=DUMMY_INTERFACE):
    """The node's primary address per family, as a tuple of texts (IPv4 first).

    Per family: the preferred source of the main table's default route with the lowest
    metric; without one, the first usable global address on that route's interface;
    without a default route (or none of those), the first usable global address on
    any interface but the dummy. A family with no global address has none.
    """
    result = []
    for family in (4, 6):
        candidates = [item for item in addresses
                      if item.family == family and item.scope == route.RT_SCOPE_UNIVERSE and item.usable
                      and item.interface != dummy_interface]
        defaults = sorted((entry for entry in routes
                           if entry.family == family and entry.dst_len == 0 and entry.table == route.RT_TABLE_MAIN
                           and entry.type == route.RTN_UNICAST), key=lambda entry: entry.priority)
        chosen = None
        for default in defaults:
            if default.prefsrc:
                chosen = default.prefsrc
            else:
                on_link = [item.address for item in candidates if item.interface == names.get(default.oif)]
                chosen = on_link[0] if on_link else None
            if chosen:
                break
        if chosen is None and candidates:
            chosen = candidates[0].address
        if chosen:
            result.append(chosen)
    return tuple(result)


def on_other_interface(addresses, address, dummy_interface=DUMMY_INTERFACE):
    """True when address (text, any spelling) is bound to an interface other than the
    dummy: kube-proxy then leaves it off the dummy (an external IP the node owns)."""
    wanted = ipaddress.ip_address(address)
    return any(item.interface != dummy_interface and ipaddress.ip_address(item.address) == wanted
               for item in addresses)


class Snapshot(collections.namedtuple('Snapshot', ('addresses', 'routes', 'names'))):
    """What read() found: [Address], [Route], {index: interface name}."""

    __slots__ = ()

    def local(self):
        return local_addresses(self.addresses)

    def primary(self, dummy_interface=DUMMY_INTERFACE):
        return primary_addresses(self.addresses, self.routes, self.names, dummy_interface)

    def on_interface(self, interface):
        """The address texts on interface (a set; empty when it has none or is absent)."""
        return set(item.address for item in self.addresses if item.interface == interface)


def interface_names():
    """{index: name} of the node's interfaces (if_nameindex: one ioctl, no process)."""
    return dict(socket.if_nameindex())


def read(sock=None, names=None):
    """Dump the node's addresses and its default routes over rtnetlink.

    sock: a route.RtnlSocket (a new one when None, closed afterwards); names: index ->
    name map (interface_names() when None). Raises core.NetlinkError/ProtocolError.
    """
    own = sock is None
    sock = route.RtnlSocket() if own else sock
    try:
        if names is None:
            names = interface_names()
        # Only the main table's routes, where the kernel can filter (strict dumps): every dummy
        # address has a route in the local table, thousands not worth sending.
        table = route.RT_TABLE_MAIN if sock.strict_dumps() else 0
        addr_bodies = [body for kind, body in sock.dump(route.RTM_GETADDR, route.IFADDRMSG.pack(0, 0, 0, 0, 0))
                       if kind == route.RTM_NEWADDR]
        # Default routes only (rtmsg's dst_len, its second byte, 0): the primary address is all
        # routes serve here (parse_routes and primary_addresses check the table again).
        route_bodies = [body for kind, body in sock.dump(route.RTM_GETROUTE,
                                                         route.RTMSG.pack(0, 0, 0, 0, table, 0, 0, 0, 0))
                        if kind == route.RTM_NEWROUTE and len(body) > 1 and body[1] == 0]
    finally:
        if own:
            sock.close()
    return Snapshot(parse_addresses(addr_bodies, names), parse_routes(route_bodies), names)
