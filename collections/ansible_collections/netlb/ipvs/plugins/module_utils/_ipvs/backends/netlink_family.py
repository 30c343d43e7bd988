# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The IPVS generic-netlink family's vocabulary: commands, attributes, flags, the tables
that turn model values into the kernel's numbers, and addresses both ways.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only, so targets need nothing installed. Numbers come from <linux/ip_vs.h>.
Translation rules (model <-> kernel attributes), kept by netlink_encode.py and
netlink_decode.py:
- ports are big-endian; the protocol, family, fwmark, flags and counters host-order;
- the persistence netmask is a 32-bit mask (network order) for IPv4 and a prefix
  length (host order) for IPv6; the model holds a prefix length for both;
- service flags travel as {flags, mask}; we always send mask 0xffffffff because
  "set" replaces the whole entry; dumps carry the internal HASHED bit, masked out;
- scheduler flags SCHED1/SCHED2 are sh-/mh-fallback and sh-/mh-port;
- route and tunnel real servers get the service's port, as ipvsadm does, so both
  backends leave the same table behind;
- every setting of model.SERVICE_SETTINGS / SERVER_SETTINGS travels as its ``netlink``
  entry there says; DEST_SETTINGS below is that for real servers, in code. A service's
  one-packet scheduling is a flag bit, its persistence engine an attribute left out when
  there is none (the kernel's "set" then drops any engine).
"""

from __future__ import annotations

import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils import _address_text
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs import model


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
SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3

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

FLAGS = struct.Struct('=II')
U64 = struct.Struct('=Q')
U8 = struct.Struct('=B')
ADDR_PAD = b'\0' * 12


class Cache(dict):
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
_PACKED = Cache()
_TEXT = Cache()
# An address service's identity: family, protocol, address, port (network order),
# the head of every request naming it and of the kernel's replies.
SVC_ADDR = struct.Struct('=HHH2x HHH2x HH16s HHH2x')
ATTR = struct.Struct('=HH')
U16 = struct.Struct('=H')
U32 = struct.Struct('=I')
BE16 = struct.Struct('>H')

# How each real-server setting (model.SERVER_SETTINGS, same order) travels: attribute,
# payload struct, model value -> number (None: the value itself). decode_dest reads
# them back by the same entries; the masq fast path of request() and decode_dest_rows
# pack/unpack the same attributes in one Struct (tests hold them to these).
DEST_SETTINGS = (
    ('weight', DEST_ATTR_WEIGHT, U32, None),
    ('forwarding', DEST_ATTR_FWD_METHOD, U32, FWD),
    ('upper_threshold', DEST_ATTR_U_THRESH, U32, None),
    ('lower_threshold', DEST_ATTR_L_THRESH, U32, None),
    ('tunnel_type', DEST_ATTR_TUN_TYPE, U8, TUN_TYPE),
    ('tunnel_port', DEST_ATTR_TUN_PORT, BE16, None),
    ('tunnel_checksum', DEST_ATTR_TUN_FLAGS, U16, TUN_FLAGS),
)


def packed_address(address):
    """16 bytes (IPv4 zero-padded, as the kernel's union nf_inet_addr) and the AF_*."""
    hit = _PACKED.get(address)
    if hit is None:
        if ':' in address:
            hit = (socket.inet_pton(socket.AF_INET6, address), socket.AF_INET6)
        else:
            hit = (socket.inet_pton(socket.AF_INET, address) + ADDR_PAD, socket.AF_INET)
        _PACKED.put(address, hit)
    return hit


def address_text(raw, family):
    """Canonical text of a 16-byte kernel address (the model's spelling)."""
    key = (raw, family)
    text = _TEXT.get(key)
    if text is None:
        # ipaddress's text for a fraction of its cost: a read decodes every real server's
        # address, mostly all different (~30% of a 10,000-server read).
        text = _address_text.from_packed(bytes(raw[:4] if family == 4 else raw[:16]))
        _TEXT.put(key, text)
    return text
