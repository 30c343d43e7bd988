# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The default backend: the kernel's IPVS generic-netlink family, spoken directly.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only, so targets need nothing installed. Numbers come from <linux/ip_vs.h>.
Translation rules (model <-> kernel attributes):
- ports are big-endian; the protocol, family, fwmark, flags and counters host-order;
- the persistence netmask is a 32-bit mask (network order) for IPv4 and a prefix
  length (host order) for IPv6; the model holds a prefix length for both;
- service flags travel as {flags, mask}; we always send mask 0xffffffff because
  "set" replaces the whole entry; dumps carry the internal HASHED bit, masked out;
- scheduler flags SCHED1/SCHED2 are sh-/mh-fallback and sh-/mh-port;
- route and tunnel real servers get the service's port, as ipvsadm does, so both
  backends leave the same table behind;
- every setting of model.SERVICE_SETTINGS / SERVER_SETTINGS travels as its ``netlink``
  entry there says; _DEST_SETTINGS below is that for real servers, in code. A service's
  one-packet scheduling is a flag bit, its persistence engine an attribute left out when
  there is none (the kernel's "set" then drops any engine).
Reads dump the services once, then the real servers service by service (the kernel
runs one dump at a time per socket); read_traffic() dumps the services alone for their
counters (STATS64). Writes go out in batches (see _genl).
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import os
import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import _genl
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import base

FAMILY_NAME = 'IPVS'
VERSION = 1

CMD_NEW_SERVICE = 1
CMD_SET_SERVICE = 2
CMD_DEL_SERVICE = 3
CMD_GET_SERVICE = 4
CMD_NEW_DEST = 5
CMD_SET_DEST = 6
CMD_DEL_DEST = 7
CMD_GET_DEST = 8

CMD_ATTR_SERVICE = 1
CMD_ATTR_DEST = 2

SVC_ATTR_AF = 1
SVC_ATTR_PROTOCOL = 2
SVC_ATTR_ADDR = 3
SVC_ATTR_PORT = 4
SVC_ATTR_FWMARK = 5
SVC_ATTR_SCHED_NAME = 6
SVC_ATTR_FLAGS = 7
SVC_ATTR_TIMEOUT = 8
SVC_ATTR_NETMASK = 9
SVC_ATTR_STATS = 10
SVC_ATTR_PE_NAME = 11
SVC_ATTR_STATS64 = 12

# Inside SVC_ATTR_STATS64 every counter is a u64; inside the older SVC_ATTR_STATS the
# first three are u32 and the byte counts u64 (both are in every service reply).
STATS_ATTR_CONNS = 1
STATS_ATTR_INPKTS = 2
STATS_ATTR_OUTPKTS = 3
STATS_ATTR_INBYTES = 4
STATS_ATTR_OUTBYTES = 5

DEST_ATTR_ADDR = 1
DEST_ATTR_PORT = 2
DEST_ATTR_FWD_METHOD = 3
DEST_ATTR_WEIGHT = 4
DEST_ATTR_U_THRESH = 5
DEST_ATTR_L_THRESH = 6
DEST_ATTR_ACTIVE_CONNS = 7
DEST_ATTR_INACT_CONNS = 8
DEST_ATTR_ADDR_FAMILY = 11
DEST_ATTR_TUN_TYPE = 13
DEST_ATTR_TUN_PORT = 14
DEST_ATTR_TUN_FLAGS = 15

SVC_F_PERSISTENT = 0x1
SVC_F_HASHED = 0x2
SVC_F_ONEPACKET = 0x4
SVC_F_SCHED1 = 0x8
SVC_F_SCHED2 = 0x10
SVC_F_SCHED3 = 0x20
SCHED_BITS = (SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3)
_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
AF_FAMILY = {socket.AF_INET: 4, socket.AF_INET6: 6}
PROTO = {'tcp': socket.IPPROTO_TCP, 'udp': socket.IPPROTO_UDP, 'sctp': 132}
PROTO_NAME = dict((number, name) for name, number in PROTO.items())
# IP_VS_CONN_F_*: LOCALNODE (1) is what ipvsadm also lists as -g.
FWD = {'masq': 0, 'tunnel': 2, 'route': 3}
FWD_NAME = {0: 'masq', 1: 'route', 2: 'tunnel', 3: 'route'}
# IP_VS_CONN_F_TUNNEL_TYPE_* and IP_VS_TUNNEL_ENCAP_FLAG_* are the index in the model's tuples.
TUN_TYPE = dict((name, number) for number, name in enumerate(model.TUNNEL_TYPES))
TUN_FLAGS = dict((name, number) for number, name in enumerate(model.TUNNEL_CHECKSUMS))
FLAG_BIT = {'flag-1': SVC_F_SCHED1, 'flag-2': SVC_F_SCHED2, 'flag-3': SVC_F_SCHED3}
for _names in model.SCHEDULER_FLAGS.values():
    FLAG_BIT.update(zip(_names, SCHED_BITS))

_FLAGS = struct.Struct('=II')
_U64 = struct.Struct('=Q')
_U8 = struct.Struct('=B')
_ADDR_PAD = b'\0' * 12


class _Cache(dict):
    """A memo that starts over once it holds CACHE_LIMIT entries: a long-running process
    sees addresses come and go (every rollout brings new pod IPs) and must not grow."""

    def put(self, key, value):
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[key] = value
        return value


# Tables are large (50,000 real servers): addresses repeat, so both directions are cached,
# each cache big enough for several such tables.
CACHE_LIMIT = 1 << 18
_PACKED = _Cache()
_TEXT = _Cache()
_SERVICE_IDS = _Cache()
_SELECTORS = _Cache()
# A real server's address, port (pre-swapped to network order), family, forwarding,
# weight and thresholds: the attributes of every NEW_DEST/SET_DEST, packed in one go.
_DEST_FULL = struct.Struct('=HH16s HHH2x HHH2x HHI HHI HHI HHI')
_DEST_ID = struct.Struct('=HH16s HHH2x HHH2x')
_DEST_NESTED_FULL = struct.Struct('=HH' + _DEST_FULL.format[1:])  # CMD_ATTR_DEST around _DEST_FULL
# A service's identity: family, protocol, address, port (network order) / family, fwmark.
_SVC_ADDR = struct.Struct('=HHH2x HHH2x HH16s HHH2x')
_SVC_MARK = struct.Struct('=HHH2x HHI')
_ATTR = struct.Struct('=HH')
_U16 = struct.Struct('=H')
_U32 = struct.Struct('=I')
_BE16 = struct.Struct('>H')

# How each real-server setting (model.SERVER_SETTINGS, same order) travels: attribute,
# payload struct, model value -> number (None: the value itself). decode_dest reads
# them back by the same entries; the masq fast path of request() and decode_dest_rows
# pack/unpack the same attributes in one Struct (tests hold them to these).
_DEST_SETTINGS = (
    ('weight', DEST_ATTR_WEIGHT, _U32, None),
    ('forwarding', DEST_ATTR_FWD_METHOD, _U32, FWD),
    ('upper_threshold', DEST_ATTR_U_THRESH, _U32, None),
    ('lower_threshold', DEST_ATTR_L_THRESH, _U32, None),
    ('tunnel_type', DEST_ATTR_TUN_TYPE, _U8, TUN_TYPE),
    ('tunnel_port', DEST_ATTR_TUN_PORT, _BE16, None),
    ('tunnel_checksum', DEST_ATTR_TUN_FLAGS, _U16, TUN_FLAGS),
)
# number -> model value, per attribute that has names
_DEST_NAMES = {DEST_ATTR_FWD_METHOD: FWD_NAME, DEST_ATTR_TUN_TYPE: dict(enumerate(model.TUNNEL_TYPES)),
               DEST_ATTR_TUN_FLAGS: dict(enumerate(model.TUNNEL_CHECKSUMS))}


# ---------------------------------------------------------------------------
# Encoding (model -> attributes)


def _packed(address):
    """16 bytes (IPv4 zero-padded, as the kernel's union nf_inet_addr) and the AF_*."""
    hit = _PACKED.get(address)
    if hit is None:
        if ':' in address:
            hit = (socket.inet_pton(socket.AF_INET6, address), socket.AF_INET6)
        else:
            hit = (socket.inet_pton(socket.AF_INET, address) + _ADDR_PAD, socket.AF_INET)
        _PACKED.put(address, hit)
    return hit


def netmask_bytes(prefix, family):
    if family == 4:
        return struct.pack('>I', (0xffffffff << (32 - prefix)) & 0xffffffff)
    return struct.pack('=I', prefix)


def service_id(key):
    """The attributes naming a service (enough for deletes and real server commands)."""
    attrs = _SERVICE_IDS.get(key)
    if attrs is None:
        if key.is_fwmark:
            attrs = _SVC_MARK.pack(6, SVC_ATTR_AF, AF[key.family], 8, SVC_ATTR_FWMARK, key.fwmark)
        else:
            attrs = _SVC_ADDR.pack(6, SVC_ATTR_AF, AF[key.family], 6, SVC_ATTR_PROTOCOL, PROTO[key.protocol],
                                   20, SVC_ATTR_ADDR, _packed(key.address)[0], 6, SVC_ATTR_PORT, socket.htons(key.port))
        _SERVICE_IDS.put(key, attrs)
    return attrs


def service_selector(key):
    """CMD_ATTR_SERVICE around service_id(key): what every real server request names."""
    selector = _SELECTORS.get(key)
    if selector is None:
        attrs = service_id(key)
        selector = _SELECTORS.put(key, _ATTR.pack(4 + len(attrs), CMD_ATTR_SERVICE) + attrs)
    return selector


def service_flags(service):
    flags = SVC_F_PERSISTENT if service.persistence_timeout else 0
    if service.one_packet:
        flags |= SVC_F_ONEPACKET
    for name in service.scheduler_flags:
        flags |= FLAG_BIT[name]
    return flags


def service_attrs(service):
    """A complete service: the kernel's "set" replaces every setting."""
    return b''.join((
        service_id(service.key),
        _genl.string(SVC_ATTR_SCHED_NAME, service.scheduler),
        _genl.attr(SVC_ATTR_FLAGS, _FLAGS.pack(service_flags(service), 0xffffffff)),
        _genl.u32(SVC_ATTR_TIMEOUT, service.persistence_timeout),
        _genl.attr(SVC_ATTR_NETMASK, netmask_bytes(service.persistence_netmask, service.key.family)),
        _genl.string(SVC_ATTR_PE_NAME, service.persistence_engine) if service.persistence_engine else b'',
    ))


def server_port(service, server):
    """The port the kernel is given: ipvsadm forces route/tunnel servers onto the
    service's port, and so do we so that both backends agree."""
    if server.forwarding in ('route', 'tunnel'):
        return service.key.port
    return server.port


def dest_attrs(server, full=True, port=None):
    packed, af = _packed(server.address)
    port = socket.htons(server.port if port is None else port)
    attrs = _DEST_ID.pack(20, DEST_ATTR_ADDR, packed, 6, DEST_ATTR_PORT, port, 6, DEST_ATTR_ADDR_FAMILY, af)
    if not full:
        return attrs
    parts = [attrs]
    for name, kind, layout, numbers in _DEST_SETTINGS:
        value = getattr(server, name)
        parts.append(_genl.attr(kind, layout.pack(value if numbers is None else numbers[value])))
    return b''.join(parts)


def request(action):
    """(command, payload) for one action."""
    service, server = action.service, action.server
    op = action.op
    if op in (model.ADD_SERVICE, model.EDIT_SERVICE):
        cmd = CMD_NEW_SERVICE if op == model.ADD_SERVICE else CMD_SET_SERVICE
        return cmd, _genl.nested(CMD_ATTR_SERVICE, service_attrs(service))
    if op == model.DELETE_SERVICE:
        return CMD_DEL_SERVICE, _genl.nested(CMD_ATTR_SERVICE, service_id(service.key))
    svc = service_selector(service.key)
    if op == model.DELETE_SERVER:
        # The server as the kernel holds it: no port rewriting here.
        return CMD_DEL_DEST, svc + _genl.nested(CMD_ATTR_DEST, dest_attrs(server, full=False))
    cmd = CMD_NEW_DEST if op == model.ADD_SERVER else CMD_SET_DEST
    if server.forwarding == 'masq' and server.tunnel_type == 'ipip' and not server.tunnel_port \
            and server.tunnel_checksum == 'none':
        # The common case in one pack (a full load sends one per real server); the tunnel
        # attributes left out are the kernel's zero defaults, the model's too.
        packed, af = _packed(server.address)
        return cmd, svc + _DEST_NESTED_FULL.pack(
            4 + _DEST_FULL.size, CMD_ATTR_DEST, 20, DEST_ATTR_ADDR, packed, 6, DEST_ATTR_PORT,
            socket.htons(server.port), 6, DEST_ATTR_ADDR_FAMILY, af, 8, DEST_ATTR_FWD_METHOD, 0, 8,
            DEST_ATTR_WEIGHT, server.weight, 8, DEST_ATTR_U_THRESH, server.upper_threshold, 8,
            DEST_ATTR_L_THRESH, server.lower_threshold)
    return cmd, svc + _genl.nested(CMD_ATTR_DEST, dest_attrs(server, port=server_port(service, server)))


# ---------------------------------------------------------------------------
# Decoding (attributes -> model)


def _address(raw, family):
    """Canonical text of a 16-byte kernel address (the model's spelling)."""
    key = (raw, family)
    text = _TEXT.get(key)
    if text is None:
        if family == 4:
            # Same text as ipaddress gives, for a fraction of the cost: a read decodes every
            # real server's address, mostly all different (~30% of a 10,000-server read).
            text = socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))
        else:
            text = str(ipaddress.ip_address(bytes(raw[:16])))
        _TEXT.put(key, text)
    return text


def _prefix_of(value, family):
    """The prefix length of a NETMASK attribute read as a host-order u32: IPv6 sends the
    length itself, IPv4 a mask in network order."""
    if family == 6:
        return value
    return bin(socket.ntohl(value)).count('1')  # a non-contiguous mask cannot come from ipvsadm or us


def flag_names(scheduler, flags):
    names = model.SCHEDULER_FLAGS.get(scheduler, ())
    result = []
    for i, bit in enumerate(SCHED_BITS):
        if flags & bit:
            result.append(names[i] if i < len(names) else 'flag-%d' % (i + 1))
    return tuple(result)


# A virtual service reply as kernels since 2.6.30 fill it for address services: AF,
# PROTOCOL, ADDR, PORT (this struct, = _SVC_ADDR), SCHED_NAME, then FLAGS, TIMEOUT,
# NETMASK (_SVC_TAIL) unless a persistence engine name comes between.
_SVC_HEAD_HEADERS = (6, SVC_ATTR_AF, 6, SVC_ATTR_PROTOCOL, 20, SVC_ATTR_ADDR, 6, SVC_ATTR_PORT)
_SVC_TAIL = struct.Struct('=HHII HHI HHI')
_SVC_TAIL_HEADERS = (12, SVC_ATTR_FLAGS, 8, SVC_ATTR_TIMEOUT, 8, SVC_ATTR_NETMASK)


def _service_settings(key, scheduler, flags, timeout, netmask, engine):
    """The keyword arguments of model.VirtualService for what a dump holds: flags without
    the HASHED bit, timeout and netmask (host-order u32) as the kernel sends them."""
    persistent = flags & SVC_F_PERSISTENT
    return {'key': key, 'scheduler': scheduler,
            'scheduler_flags': flag_names(scheduler, flags) if flags & _SCHED_MASK else (),
            'persistence_timeout': timeout if persistent else 0,
            'persistence_netmask': _prefix_of(netmask, key.family) if persistent else None,
            'persistence_engine': engine or None, 'one_packet': bool(flags & SVC_F_ONEPACKET)}


def decode_service_message(data, start, stop):
    """decode_service_fields() of the attributes in data[start:stop], with one unpack
    for the head and one for the tail in the usual layout (a read decodes thousands)."""
    tail = start + _SVC_ADDR.size
    if stop - tail >= 4 + _SVC_TAIL.size:
        head = _SVC_ADDR.unpack_from(data, start)
        length, kind = _ATTR.unpack_from(data, tail)
        if head[0:2] + head[3:5] + head[6:8] + head[9:11] == _SVC_HEAD_HEADERS and kind == SVC_ATTR_SCHED_NAME:
            name = bytes(data[tail + 4:tail + length]).split(b'\0', 1)[0].decode('ascii', 'replace')
            tail += (length + 3) & ~3
            if stop - tail >= _SVC_TAIL.size:
                fields = _SVC_TAIL.unpack_from(data, tail)
                family = AF_FAMILY.get(head[2])
                if fields[0:2] + fields[4:6] + fields[7:9] == _SVC_TAIL_HEADERS and family is not None:
                    key = model.ServiceKey(PROTO_NAME.get(head[5], 'unknown'), _address(head[8], family),
                                           socket.ntohs(head[11]), 0, family)
                    return _service_settings(key, name, fields[2] & ~SVC_F_HASHED, fields[6], fields[9], None)
    return decode_service_fields(_genl.parse_attrs(data, start, stop))


def decode_service_key(attrs):
    """The model.ServiceKey of a service reply's attributes."""
    family = AF_FAMILY.get(_genl.get_u16(attrs, SVC_ATTR_AF))
    if family is None:
        raise _genl.ProtocolError('unknown address family %d' % _genl.get_u16(attrs, SVC_ATTR_AF))
    if SVC_ATTR_FWMARK in attrs:
        return model.ServiceKey.mark(_genl.get_u32(attrs, SVC_ATTR_FWMARK), family)
    return model.ServiceKey(
        protocol=PROTO_NAME.get(_genl.get_u16(attrs, SVC_ATTR_PROTOCOL), 'unknown'),
        address=_address(attrs[SVC_ATTR_ADDR], family),
        port=_genl.get_be16(attrs, SVC_ATTR_PORT),
        family=family)


def decode_service_fields(attrs):
    """The model.VirtualService keyword arguments (key and settings) of a service dump."""
    key = decode_service_key(attrs)
    flags = _FLAGS.unpack(attrs[SVC_ATTR_FLAGS][:8])[0] & ~SVC_F_HASHED
    return _service_settings(key, _genl.get_string(attrs, SVC_ATTR_SCHED_NAME), flags,
                             _genl.get_u32(attrs, SVC_ATTR_TIMEOUT), _genl.get_u32(attrs, SVC_ATTR_NETMASK),
                             _genl.get_string(attrs, SVC_ATTR_PE_NAME))


# A virtual service's traffic since it was made, as the kernel counts it (ipvsadm -L
# --stats --exact): connections scheduled, packets and bytes in (client to real server)
# and out (real server to client; NAT only, direct routing never sees replies).
Traffic = collections.namedtuple('Traffic', 'connections packets_in packets_out bytes_in bytes_out')
NO_TRAFFIC = Traffic(0, 0, 0, 0, 0)
_TRAFFIC_ATTRS = (STATS_ATTR_CONNS, STATS_ATTR_INPKTS, STATS_ATTR_OUTPKTS, STATS_ATTR_INBYTES, STATS_ATTR_OUTBYTES)


def _counter(raw, size):
    """A counter attribute's payload as a number: u64, or u32 when size says so."""
    if size == 4 or len(raw) < 8:
        return _U32.unpack(raw[:4])[0] if len(raw) >= 4 else 0
    return _U64.unpack(raw[:8])[0]


def decode_traffic(attrs):
    """The Traffic of a service reply's attributes: STATS64 when the kernel sends it
    (since 4.1), else STATS (32-bit connection and packet counts, which wrap)."""
    if SVC_ATTR_STATS64 in attrs:
        stats = _genl.parse_attrs(attrs[SVC_ATTR_STATS64])
        return Traffic(*(_counter(stats.get(kind, b''), 8) for kind in _TRAFFIC_ATTRS))
    if SVC_ATTR_STATS in attrs:
        stats = _genl.parse_attrs(attrs[SVC_ATTR_STATS])
        sizes = (4, 4, 4, 8, 8)
        return Traffic(*(_counter(stats.get(kind, b''), size) for kind, size in zip(_TRAFFIC_ATTRS, sizes)))
    return NO_TRAFFIC


_DEST_COUNTERS = (DEST_ATTR_ACTIVE_CONNS, DEST_ATTR_INACT_CONNS)
# attribute -> (setting name, payload struct, number -> value) for decode_dest
_DEST_DECODE = dict((kind, (name, layout, _DEST_NAMES.get(kind))) for name, kind, layout, _numbers in _DEST_SETTINGS)
_DEST_DECODE.update((kind, (kind, _U32, None)) for kind in _DEST_COUNTERS)


# The attributes a kernel since 5.2 puts first in a real server dump, in its order
# (checked on 6.1 and 6.12): the hot path of a read unpacks them in one call.
_DEST_DUMP = struct.Struct('=HH16s HHH2x HHI HHI HHB3x HHH2x HHH2x HHI HHI HHI HHI HHI HHH2x')
_DEST_DUMP_HEADERS = ((20, DEST_ATTR_ADDR), (6, DEST_ATTR_PORT), (8, DEST_ATTR_FWD_METHOD), (8, DEST_ATTR_WEIGHT),
                      (5, 13), (6, 14), (6, 15), (8, DEST_ATTR_U_THRESH), (8, DEST_ATTR_L_THRESH),
                      (8, DEST_ATTR_ACTIVE_CONNS), (8, DEST_ATTR_INACT_CONNS), (8, 9), (6, DEST_ATTR_ADDR_FAMILY))
_DEST_DUMP_LENGTHS = tuple(length for length, _kind in _DEST_DUMP_HEADERS)
_DEST_DUMP_KINDS = tuple(kind for _length, kind in _DEST_DUMP_HEADERS)
# A whole real server reply message: nlmsghdr, genlmsghdr, the CMD_ATTR_DEST header, the
# attributes above, then the rest (stats) skipped; built per message size (see _dest_row).
_DEST_ROW_HEAD = '=IHHI4x BBH HH' + _DEST_DUMP.format[1:]
_DEST_ROW_PREFIX = struct.calcsize(_DEST_ROW_HEAD)
# Where the fields sit in a row: attribute headers (length, kind) and the values.
_ROW_ATTR_LENGTHS = slice(9, 9 + 3 * len(_DEST_DUMP_HEADERS), 3)
_ROW_ATTR_KINDS = slice(10, 10 + 3 * len(_DEST_DUMP_HEADERS), 3)
_ROW_NESTED_KIND = 8
_DEST_ROWS = {}  # message size -> Struct of the whole message


def _dest_row(size):
    """The Struct for real server reply messages of size bytes (None if too short)."""
    row = _DEST_ROWS.get(size)
    if row is None and size >= _DEST_ROW_PREFIX and size % 4 == 0:
        row = _DEST_ROWS[size] = struct.Struct(_DEST_ROW_HEAD + '%dx' % (size - _DEST_ROW_PREFIX))
    return row


def decode_dest_rows(data, length, family, seq, servers, connections):
    """Decode a datagram of real server replies in one unpack, if it is made of
    messages of one size in today's layout; returns False (nothing decoded) otherwise.

    The hot loop of a read: 50,000 real servers. The kernel fills every reply with the
    same attributes in the same order, so equal sizes mean equal layouts; the first row
    of each datagram is checked field by field, every row for its header.
    """
    size = _U32.unpack_from(data, 0)[0]
    row = _dest_row(size)
    if row is None or length % size:
        return False
    rows = list(row.iter_unpack(data[:length]))
    first = rows[0]
    if (first[_ROW_ATTR_LENGTHS] != _DEST_DUMP_LENGTHS or first[_ROW_ATTR_KINDS] != _DEST_DUMP_KINDS
            or first[_ROW_NESTED_KIND] & _genl.NLA_TYPE_MASK != CMD_ATTR_DEST):
        return False
    head = (size, first[1], _genl.NLM_F_MULTI, seq)
    ntop, ntohs, af_inet, fwd_name = socket.inet_ntop, socket.ntohs, socket.AF_INET, FWD_NAME
    tunnel_names, checksum_names, server_of = _DEST_NAMES[DEST_ATTR_TUN_TYPE], _DEST_NAMES[DEST_ATTR_TUN_FLAGS], \
        model.RealServer
    decoded, counted = [], []
    for (m_size, m_type, m_flags, m_seq, _c, _v, _r, _nl, _nk, _l, _k, raw, _l, _k, port, _l, _k, fwd,
         _l, _k, weight, _l, _k, tunnel, _l, _k, tunnel_port, _l, _k, checksum, _l, _k, upper, _l, _k, lower,
         _l, _k, active, _l, _k, inactive, _l, _k, _pc, _l, _k, af) in rows:
        if (m_size, m_type, m_flags, m_seq) != head:
            return False  # an interrupted dump, an error: the general path says which
        if af == af_inet:
            address = ntop(af_inet, raw[:4])
        else:
            address = _address(raw, AF_FAMILY.get(af, family))
        # RealServer's own constructor, positionally: the field order is model.SERVER_SETTINGS'
        # (tests pin it); keywords would cost a third of this loop. Tunnel settings other
        # than the defaults (all zero) are rare: only then are they named.
        if tunnel or tunnel_port or checksum:
            server = server_of(address, ntohs(port), weight, fwd_name.get(fwd & 7, 'masq'), upper, lower,
                               tunnel_names.get(tunnel, 'ipip'), ntohs(tunnel_port), checksum_names.get(checksum, 'none'))
        else:
            server = server_of(address, ntohs(port), weight, fwd_name.get(fwd & 7, 'masq'), upper, lower)
        decoded.append(server)
        if active or inactive:
            counted.append(((address, server[1]), (active, inactive)))
    servers.extend(decoded)
    connections.update(counted)
    return True


def decode_dest(data, offset, end, service_family):
    """(RealServer, (active, inactive)) from the attributes in data[offset:end] of one
    real server reply, in any attribute order (old kernels, future ones)."""
    values = dict.fromkeys(_DEST_COUNTERS, 0)
    raw, port, family = None, 0, service_family
    unpack, mask = _ATTR.unpack_from, _genl.NLA_TYPE_MASK
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            raise _genl.ProtocolError('bad attribute length %d' % length)
        kind &= mask
        decode = _DEST_DECODE.get(kind)
        if decode is not None:
            name, layout, names = decode
            value = layout.unpack_from(data, offset + 4)[0]
            if kind == DEST_ATTR_FWD_METHOD:
                value &= 7
            values[name] = value if names is None else names.get(value, names.get(0))
        elif kind == DEST_ATTR_ADDR:
            raw = bytes(data[offset + 4:offset + 20])
        elif kind == DEST_ATTR_PORT:
            port = _BE16.unpack_from(data, offset + 4)[0]
        elif kind == DEST_ATTR_ADDR_FAMILY:
            family = AF_FAMILY.get(_U16.unpack_from(data, offset + 4)[0], service_family)
        offset += (length + 3) & ~3
    if raw is None:
        raise _genl.ProtocolError('real server without an address')
    counters = (values.pop(DEST_ATTR_ACTIVE_CONNS), values.pop(DEST_ATTR_INACT_CONNS))
    return model.RealServer(address=_address(raw, family), port=port, **values), counters


def nested_span(data, offset, end, kind):
    """(start, stop) of the payload of top-level attribute kind in one reply message."""
    while offset + 4 <= end:
        length, got = _ATTR.unpack_from(data, offset)
        if length < 4:
            break
        if got & _genl.NLA_TYPE_MASK == kind:
            return offset + 4, offset + length
        offset += (length + 3) & ~3
    raise _genl.ProtocolError('reply without attribute %d' % kind)


# ---------------------------------------------------------------------------
# Errors

# What an errno means for IPVS, by what we asked (the kernel's own words are terse).
HINTS = {
    errno.EEXIST: 'it already exists',
    errno.ESRCH: 'no such virtual service',
    errno.ENOENT: "no such real server, or the scheduler's kernel module is missing",
    errno.EINVAL: 'for a real server: its address must be unicast, and loopback must be up in this '
                  'network namespace',
    errno.EPERM: 'managing IPVS needs CAP_NET_ADMIN (become root)',
    errno.EAFNOSUPPORT: 'IPv6 disabled, or mixed address families for a server that is not a tunnel',
}


def describe(action):
    text = '%s %s' % (action.op, action.service.key)
    if action.server is not None:
        text += ' -> %s' % action.server.endpoint
    return text


def _kernel_words(code, text):
    words = os.strerror(code)
    if code in HINTS:
        words += ': ' + HINTS[code]
    if text:
        words += ' (%s)' % text
    return words


# ---------------------------------------------------------------------------
# The backend


class NetlinkBackend(base.Backend):
    """IPVS over generic netlink, no dependency on the target."""

    name = 'netlink'

    def __init__(self, check_mode=False, sock=None):
        super(NetlinkBackend, self).__init__(check_mode)
        self._sock = sock
        self._conn = None
        self._family = None

    def probe(self):
        """Open the socket and find the IPVS family now; raises BackendError."""
        self._connect()

    def _connect(self):
        if self._conn is None:
            try:
                conn = _genl.GenlSocket(self._sock)
            except _genl.ProtocolError as exc:
                raise model.BackendError(str(exc))
            try:
                self._family = conn.family(FAMILY_NAME)[0]
            except _genl.NetlinkError as exc:
                conn.close()
                if exc.errno == errno.ENOENT:
                    raise model.BackendError(
                        'the kernel has no IPVS generic netlink family: the ip_vs module is not '
                        'loaded (modprobe ip_vs) or IPVS is not built in')
                raise model.BackendError('looking up the IPVS netlink family failed: %s' % exc)
            except _genl.ProtocolError as exc:
                conn.close()
                raise model.BackendError(str(exc))
            self._conn = conn
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _dumps(self, cmd, payloads, handle, what, datagram=None):
        """Run dumps; what(index) names what the index-th one reads, for errors."""
        try:
            self._conn.dumps(self._family, cmd, VERSION, payloads, handle, datagram)
        except _genl.NetlinkError as exc:
            if exc.errno == errno.EPERM:
                raise model.BackendError('reading the IPVS table: permission denied: %s' % HINTS[errno.EPERM])
            raise model.BackendError('reading %s from the kernel failed: %s' % (what(exc.index), exc))
        except _genl.ProtocolError as exc:
            raise model.BackendError('reading the IPVS table from the kernel failed: %s' % exc)

    def read(self):
        self._connect()
        services = []

        def on_service(_index, data, offset, end):
            start, stop = nested_span(data, offset, end, CMD_ATTR_SERVICE)
            services.append(decode_service_message(data, start, stop))

        self._dumps(CMD_GET_SERVICE, (b'',), on_service, lambda _index: 'the virtual services')
        keys = [service['key'] for service in services]
        servers, counters = self._read_dests(keys)
        return dict((fields['key'], model.VirtualService(real_servers=tuple(servers[index]),
                                                         connections=counters[index], **fields))
                    for index, fields in enumerate(services))

    def _read_dests(self, keys):
        """The real servers and counters of each service of keys, one dump per service."""
        servers = [[] for _key in keys]
        counters = [{} for _key in keys]

        def on_dest(index, data, offset, end):
            start, stop = nested_span(data, offset, end, CMD_ATTR_DEST)
            server, counted = decode_dest(data, start, stop, keys[index].family)
            servers[index].append(server)
            if counted != model.NO_CONNECTIONS:
                counters[index][server.key] = counted

        def on_datagram(index, data, length, seq):
            return decode_dest_rows(data, length, keys[index].family, seq, servers[index], counters[index])

        self._dumps(CMD_GET_DEST, [service_selector(key) for key in keys], on_dest,
                    lambda index: 'the real servers of %s' % (keys[index],), on_datagram)
        return servers, counters

    def read_counters(self, keys):
        """Only the real servers of keys: one dump per service (the read's fast decoder),
        not the whole table. The kernel answers a service it does not hold (deleted
        meanwhile) with an empty dump."""
        self._connect()
        keys = list(keys)
        servers, counters = self._read_dests(keys)
        return dict((key, dict((rs.key, counters[index].get(rs.key, model.NO_CONNECTIONS)) for rs in servers[index]))
                    for index, key in enumerate(keys))

    def read_traffic(self):
        """{ServiceKey: Traffic} of every virtual service in the kernel: one dump of the
        services alone (no real servers), for metrics; the backend's check mode does not
        matter (it only reads)."""
        self._connect()
        traffic = {}

        def on_service(_index, data, offset, end):
            start, stop = nested_span(data, offset, end, CMD_ATTR_SERVICE)
            attrs = _genl.parse_attrs(data, start, stop)
            traffic[decode_service_key(attrs)] = decode_traffic(attrs)

        self._dumps(CMD_GET_SERVICE, (b'',), on_service, lambda _index: 'the virtual services')
        return traffic

    def _apply(self, actions):
        self._connect()
        try:
            sent, errors = self._conn.batch(self._family, VERSION, actions, encode=request)
        except _genl.ProtocolError as exc:
            # Batches acknowledged before are known applied; the one in flight is not.
            done = self._conn.acknowledged
            raise model.ApplyError('talking to the kernel failed after %d of %d actions: %s'
                                   % (done, len(actions), exc),
                                   applied=actions[:done], failed=actions[done] if done < len(actions) else None)
        if not errors:
            return
        failed = set(index for index, _code, _text in errors)
        applied = [a for i, a in enumerate(actions[:sent]) if i not in failed]
        lines = ['%s: %s' % (describe(actions[index]), _kernel_words(code, text))
                 for index, code, text in errors]
        message = 'the kernel refused %s' % '; '.join(lines)
        if sent < len(actions):
            message += ' (%d later action(s) not sent)' % (len(actions) - sent)
        raise model.ApplyError(message, applied=applied, failed=actions[errors[0][0]])
