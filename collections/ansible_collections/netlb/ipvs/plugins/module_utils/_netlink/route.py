# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""rtnetlink (NETLINK_ROUTE): the numbers and message bodies of links, addresses and routes.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. The framing, attributes, errors and the dump/get/batch socket are core's;
what is rtnetlink's own is the body after the netlink header (ifinfomsg / ifaddrmsg /
rtmsg) and the socket protocol. Constants come from <linux/rtnetlink.h>,
<linux/if_addr.h> and <linux/if_link.h>. Used by _k8s/node (addresses, the dummy
interface).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils import _address_text
from ansible_collections.netlb.ipvs.plugins.module_utils._netlink import core

NETLINK_ROUTE = 0

NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26

IFLA_IFNAME = 3
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_FLAGS = 8

IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_HOST = 254
RT_TABLE_MAIN = 254
RTN_UNICAST = 1

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15

FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
AF_TO_FAMILY = {socket.AF_INET: 4, socket.AF_INET6: 6}

IFINFOMSG = struct.Struct('=BxHiII')  # family, type, index, flags, change
IFADDRMSG = struct.Struct('=BBBBI')  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct('=BBBBBBBBI')  # family, dst_len, src_len, tos, table, protocol, scope, type, flags


def packed_address(address):
    """The kernel's form of an address text: 4 or 16 bytes."""
    return ipaddress.ip_address(address).packed


def address_text(family, raw):
    return _address_text.from_packed(raw[:4] if family == socket.AF_INET else raw[:16])


def open_socket():
    """A bound NETLINK_ROUTE socket with core's buffer sizes and compact ACKs."""
    return core.open_socket(NETLINK_ROUTE, 'route')


class RtnlSocket(core.RequestSocket):
    """Dumps, single requests and batches over one route netlink socket (core.RequestSocket).

    sock is anything with send(), recv_into() and close() (tests pass a fake kernel).
    """

    protocol, protocol_name = NETLINK_ROUTE, 'route'

    def strict_dumps(self):
        """Ask the kernel to check dump requests strictly and to filter dumps by their
        header's fields (a route dump by table, Linux 4.20+); True when it agreed."""
        try:
            self.sock.setsockopt(core.SOL_NETLINK, core.NETLINK_GET_STRICT_CHK, 1)
        except (AttributeError, OSError):  # an older kernel; a test's fake kernel
            return False
        return True
