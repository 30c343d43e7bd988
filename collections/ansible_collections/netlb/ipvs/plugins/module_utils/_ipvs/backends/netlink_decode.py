# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The IPVS netlink replies: attributes -> model values (services, real servers,
connection counters, traffic).

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. The numbers and the translation rules are netlink_family.py's. A read
decodes every real server of the table: the usual layouts are unpacked in one Struct
call (decode_service_message, decode_dest_rows), any other by the general decoders.
"""

from __future__ import annotations

import collections
import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends.netlink_family import (
    AF_FAMILY,
    ATTR,
    BE16,
    CMD_ATTR_DEST,
    DEST_ATTR_ACTIVE_CONNS,
    DEST_ATTR_ADDR,
    DEST_ATTR_ADDR_FAMILY,
    DEST_ATTR_FWD_METHOD,
    DEST_ATTR_INACT_CONNS,
    DEST_ATTR_L_THRESH,
    DEST_ATTR_PORT,
    DEST_ATTR_TUN_FLAGS,
    DEST_ATTR_TUN_TYPE,
    DEST_ATTR_U_THRESH,
    DEST_ATTR_WEIGHT,
    DEST_SETTINGS,
    FLAGS,
    FWD_NAME,
    PROTO_NAME,
    SCHED_BITS,
    SCHED_MASK,
    STATS_ATTR_CONNS,
    STATS_ATTR_INBYTES,
    STATS_ATTR_INPKTS,
    STATS_ATTR_OUTBYTES,
    STATS_ATTR_OUTPKTS,
    SVC_ADDR,
    SVC_ATTR_ADDR,
    SVC_ATTR_AF,
    SVC_ATTR_FLAGS,
    SVC_ATTR_FWMARK,
    SVC_ATTR_NETMASK,
    SVC_ATTR_PE_NAME,
    SVC_ATTR_PORT,
    SVC_ATTR_PROTOCOL,
    SVC_ATTR_SCHED_NAME,
    SVC_ATTR_STATS,
    SVC_ATTR_STATS64,
    SVC_ATTR_TIMEOUT,
    SVC_F_HASHED,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    U16,
    U32,
    U64,
    address_text,
)
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core

# number -> model value, per attribute that has names
_DEST_NAMES = {DEST_ATTR_FWD_METHOD: FWD_NAME, DEST_ATTR_TUN_TYPE: dict(enumerate(model.TUNNEL_TYPES)),
               DEST_ATTR_TUN_FLAGS: dict(enumerate(model.TUNNEL_CHECKSUMS))}


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
# PROTOCOL, ADDR, PORT (this struct, = SVC_ADDR), SCHED_NAME, then FLAGS, TIMEOUT,
# NETMASK (_SVC_TAIL) unless a persistence engine name comes between.
_SVC_HEAD_HEADERS = (6, SVC_ATTR_AF, 6, SVC_ATTR_PROTOCOL, 20, SVC_ATTR_ADDR, 6, SVC_ATTR_PORT)
_SVC_TAIL = struct.Struct('=HHII HHI HHI')
_SVC_TAIL_HEADERS = (12, SVC_ATTR_FLAGS, 8, SVC_ATTR_TIMEOUT, 8, SVC_ATTR_NETMASK)


def _service_settings(key, scheduler, flags, timeout, netmask, engine):
    """The keyword arguments of model.VirtualService for what a dump holds: flags without
    the HASHED bit, timeout and netmask (host-order u32) as the kernel sends them."""
    persistent = flags & SVC_F_PERSISTENT
    return {'key': key, 'scheduler': scheduler,
            'scheduler_flags': flag_names(scheduler, flags) if flags & SCHED_MASK else (),
            'persistence_timeout': timeout if persistent else 0,
            'persistence_netmask': _prefix_of(netmask, key.family) if persistent else None,
            'persistence_engine': engine or None, 'one_packet': bool(flags & SVC_F_ONEPACKET)}


def decode_service_message(data, start, stop):
    """decode_service_fields() of the attributes in data[start:stop], with one unpack
    for the head and one for the tail in the usual layout (a read decodes thousands)."""
    tail = start + SVC_ADDR.size
    if stop - tail >= 4 + _SVC_TAIL.size:
        head = SVC_ADDR.unpack_from(data, start)
        length, kind = ATTR.unpack_from(data, tail)
        if head[0:2] + head[3:5] + head[6:8] + head[9:11] == _SVC_HEAD_HEADERS and kind == SVC_ATTR_SCHED_NAME:
            name = bytes(data[tail + 4:tail + length]).split(b'\0', 1)[0].decode('ascii', 'replace')
            tail += (length + 3) & ~3
            if stop - tail >= _SVC_TAIL.size:
                fields = _SVC_TAIL.unpack_from(data, tail)
                family = AF_FAMILY.get(head[2])
                if fields[0:2] + fields[4:6] + fields[7:9] == _SVC_TAIL_HEADERS and family is not None:
                    key = model.ServiceKey(PROTO_NAME.get(head[5], 'unknown'), address_text(head[8], family),
                                           socket.ntohs(head[11]), 0, family)
                    return _service_settings(key, name, fields[2] & ~SVC_F_HASHED, fields[6], fields[9], None)
    return decode_service_fields(core.parse_attrs(data, start, stop))


def decode_service_key(attrs):
    """The model.ServiceKey of a service reply's attributes."""
    family = AF_FAMILY.get(core.get_u16(attrs, SVC_ATTR_AF))
    if family is None:
        raise core.ProtocolError('unknown address family %d' % core.get_u16(attrs, SVC_ATTR_AF))
    if SVC_ATTR_FWMARK in attrs:
        return model.ServiceKey.mark(core.get_u32(attrs, SVC_ATTR_FWMARK), family)
    return model.ServiceKey(
        protocol=PROTO_NAME.get(core.get_u16(attrs, SVC_ATTR_PROTOCOL), 'unknown'),
        address=address_text(attrs[SVC_ATTR_ADDR], family),
        port=core.get_be16(attrs, SVC_ATTR_PORT),
        family=family)


def decode_service_fields(attrs):
    """The model.VirtualService keyword arguments (key and settings) of a service dump."""
    key = decode_service_key(attrs)
    flags = FLAGS.unpack(attrs[SVC_ATTR_FLAGS][:8])[0] & ~SVC_F_HASHED
    return _service_settings(key, core.get_string(attrs, SVC_ATTR_SCHED_NAME), flags,
                             core.get_u32(attrs, SVC_ATTR_TIMEOUT), core.get_u32(attrs, SVC_ATTR_NETMASK),
                             core.get_string(attrs, SVC_ATTR_PE_NAME))


# A virtual service's traffic since it was made, as the kernel counts it (ipvsadm -L
# --stats --exact): connections scheduled, packets and bytes in (client to real server)
# and out (real server to client; NAT only, direct routing never sees replies).
Traffic = collections.namedtuple('Traffic', 'connections packets_in packets_out bytes_in bytes_out')
NO_TRAFFIC = Traffic(0, 0, 0, 0, 0)
_TRAFFIC_ATTRS = (STATS_ATTR_CONNS, STATS_ATTR_INPKTS, STATS_ATTR_OUTPKTS, STATS_ATTR_INBYTES, STATS_ATTR_OUTBYTES)


def _counter(raw, size):
    """A counter attribute's payload as a number: u64, or u32 when size says so."""
    if size == 4 or len(raw) < 8:
        return U32.unpack(raw[:4])[0] if len(raw) >= 4 else 0
    return U64.unpack(raw[:8])[0]


def decode_traffic(attrs):
    """The Traffic of a service reply's attributes: STATS64 when the kernel sends it
    (since 4.1), else STATS (32-bit connection and packet counts, which wrap)."""
    if SVC_ATTR_STATS64 in attrs:
        stats = core.parse_attrs(attrs[SVC_ATTR_STATS64])
        return Traffic(*(_counter(stats.get(kind, b''), 8) for kind in _TRAFFIC_ATTRS))
    if SVC_ATTR_STATS in attrs:
        stats = core.parse_attrs(attrs[SVC_ATTR_STATS])
        sizes = (4, 4, 4, 8, 8)
        return Traffic(*(_counter(stats.get(kind, b''), size) for kind, size in zip(_TRAFFIC_ATTRS, sizes)))
    return NO_TRAFFIC


_DEST_COUNTERS = (DEST_ATTR_ACTIVE_CONNS, DEST_ATTR_INACT_CONNS)
# attribute -> (setting name, payload struct, number -> value) for decode_dest
_DEST_DECODE = dict((kind, (name, layout, _DEST_NAMES.get(kind))) for name, kind, layout, _numbers in DEST_SETTINGS)
_DEST_DECODE.update((kind, (kind, U32, None)) for kind in _DEST_COUNTERS)


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


def decode_dest_rows(data, length, family, seq, servers, connections, known=None, made=None):
    """Decode a datagram of real server replies in one unpack, if it is made of
    messages of one size in today's layout; returns False (nothing decoded) otherwise.

    The hot loop of a read: 50,000 real servers. The kernel fills every reply with the
    same attributes in the same order, so equal sizes mean equal layouts; the first row
    of each datagram is checked field by field, every row for its header.

    known, made: the caller's memo of real servers by their settings as the kernel sent
    them (dicts): a server found in known (the last read's) is not made again; every
    server decoded goes into made (this read's, the next one's known). Its connection
    counters are read every time.
    """
    size = U32.unpack_from(data, 0)[0]
    row = _dest_row(size)
    if row is None or length % size:
        return False
    rows = list(row.iter_unpack(data[:length]))
    first = rows[0]
    if (first[_ROW_ATTR_LENGTHS] != _DEST_DUMP_LENGTHS or first[_ROW_ATTR_KINDS] != _DEST_DUMP_KINDS
            or first[_ROW_NESTED_KIND] & core.NLA_TYPE_MASK != CMD_ATTR_DEST):
        return False
    head = (size, first[1], core.NLM_F_MULTI, seq)
    ntop, ntohs, af_inet, fwd_name = socket.inet_ntop, socket.ntohs, socket.AF_INET, FWD_NAME
    tunnel_names, checksum_names, server_of = _DEST_NAMES[DEST_ATTR_TUN_TYPE], _DEST_NAMES[DEST_ATTR_TUN_FLAGS], \
        model.RealServer
    recall = known.get if known is not None else {}.get
    if made is None:
        made = {}
    decoded, counted = [], []
    for (m_size, m_type, m_flags, m_seq, _c, _v, _r, _nl, _nk, _l, _k, raw, _l, _k, port, _l, _k, fwd,
         _l, _k, weight, _l, _k, tunnel, _l, _k, tunnel_port, _l, _k, checksum, _l, _k, upper, _l, _k, lower,
         _l, _k, active, _l, _k, inactive, _l, _k, _pc, _l, _k, af) in rows:
        if (m_size, m_type, m_flags, m_seq) != head:
            return False  # an interrupted dump, an error: the general path says which
        settings = (raw, port, fwd, weight, upper, lower, tunnel, tunnel_port, checksum, af, family)
        server = recall(settings)
        if server is None:
            if af == af_inet:
                address = ntop(af_inet, raw[:4])
            else:
                address = address_text(raw, AF_FAMILY.get(af, family))
            # RealServer's own constructor, positionally: the field order is model.SERVER_SETTINGS'
            # (tests pin it); keywords would cost a third of this loop. Tunnel settings other
            # than the defaults (all zero) are rare: only then are they named.
            if tunnel or tunnel_port or checksum:
                server = server_of(address, ntohs(port), weight, fwd_name.get(fwd & 7, 'masq'), upper, lower,
                                   tunnel_names.get(tunnel, 'ipip'), ntohs(tunnel_port),
                                   checksum_names.get(checksum, 'none'))
            else:
                server = server_of(address, ntohs(port), weight, fwd_name.get(fwd & 7, 'masq'), upper, lower)
        made[settings] = server
        decoded.append(server)
        if active or inactive:
            counted.append(((server[0], server[1]), (active, inactive)))
    servers.extend(decoded)
    connections.update(counted)
    return True


def decode_dest(data, offset, end, service_family):
    """(RealServer, (active, inactive)) from the attributes in data[offset:end] of one
    real server reply, in any attribute order (old kernels, future ones)."""
    values = dict.fromkeys(_DEST_COUNTERS, 0)
    raw, port, family = None, 0, service_family
    unpack, mask = ATTR.unpack_from, core.NLA_TYPE_MASK
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            raise core.ProtocolError('bad attribute length %d' % length)
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
            port = BE16.unpack_from(data, offset + 4)[0]
        elif kind == DEST_ATTR_ADDR_FAMILY:
            family = AF_FAMILY.get(U16.unpack_from(data, offset + 4)[0], service_family)
        offset += (length + 3) & ~3
    if raw is None:
        raise core.ProtocolError('real server without an address')
    counters = (values.pop(DEST_ATTR_ACTIVE_CONNS), values.pop(DEST_ATTR_INACT_CONNS))
    return model.RealServer(address=address_text(raw, family), port=port, **values), counters


def nested_span(data, offset, end, kind):
    """(start, stop) of the payload of top-level attribute kind in one reply message."""
    while offset + 4 <= end:
        length, got = ATTR.unpack_from(data, offset)
        if length < 4:
            break
        if got & core.NLA_TYPE_MASK == kind:
            return offset + 4, offset + length
        offset += (length + 3) & ~3
    raise core.ProtocolError('reply without attribute %d' % kind)
