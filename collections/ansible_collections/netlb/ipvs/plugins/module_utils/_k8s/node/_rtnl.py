# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small rtnetlink (NETLINK_ROUTE) client: links, addresses and routes.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only. The attribute codec, message walking and error parsing are the engine's
(_ipvs/backends/_genl.py); what differs here is the body after the netlink header
(ifinfomsg / ifaddrmsg / rtmsg instead of genlmsghdr) and the socket protocol.
Constants come from <linux/rtnetlink.h>, <linux/if_addr.h> and <linux/if_link.h>.

Batches work as the engine's: many requests in one send(), only the last asks for an
ACK; the kernel answers every failed request with an NLMSG_ERROR naming its sequence
number and goes on with the next, so the last ACK tells which ones failed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends import _genl
from ansible_collections.netlb.ipvs.plugins.module_utils._ipvs.backends._genl import (  # noqa: F401 pylint: disable=unused-import
    NetlinkError,
    ProtocolError,
)

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

_HEADER = struct.Struct('=IHHII')  # nlmsghdr: len, type, flags, seq, pid
IFINFOMSG = struct.Struct('=BxHiII')  # family, type, index, flags, change
IFADDRMSG = struct.Struct('=BBBBI')  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct('=BBBBBBBBI')  # family, dst_len, src_len, tos, table, protocol, scope, type, flags


def request(kind, flags, seq, body):
    """One rtnetlink message: nlmsghdr + body (fixed header + attributes)."""
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body


def packed_address(address):
    """The kernel's form of an address text: 4 or 16 bytes."""
    return ipaddress.ip_address(address).packed


def address_text(family, raw):
    return str(ipaddress.ip_address(bytes(raw[:4] if family == socket.AF_INET else raw[:16])))


def open_socket():
    """A bound NETLINK_ROUTE socket with the engine's buffer sizes and compact ACKs."""
    return _genl.open_socket(NETLINK_ROUTE, 'route')


class RtnlSocket(_genl.NetlinkSocket):
    """Dumps, single requests and batches over one route netlink socket (the socket
    handling is the engine's, see _genl.NetlinkSocket).

    sock is anything with send(), recv_into() and close() (tests pass a fake kernel).
    """

    protocol, protocol_name = NETLINK_ROUTE, 'route'

    def dump(self, kind, body):
        """[(message type, body bytes)] of a dump request (NLM_F_DUMP)."""
        seq = self.next_seq()
        self._send(request(kind, _genl.NLM_F_REQUEST | _genl.NLM_F_DUMP, seq, body))
        replies = []
        while True:
            length = self._receive()
            for got_kind, flags, got, offset, end in _genl.iter_messages(self.buffer, length):
                if got != seq:
                    continue
                if got_kind == _genl.NLMSG_DONE:
                    return replies
                if got_kind == _genl.NLMSG_ERROR:
                    code, text = _genl.parse_error(self.buffer, offset, end, flags)
                    raise NetlinkError(code or errno.EIO, text)
                if flags & _genl.NLM_F_DUMP_INTR:
                    raise NetlinkError(errno.EINTR, 'the table changed during the dump')
                replies.append((got_kind, bytes(self.buffer[offset:end])))

    def get(self, kind, body, flags=0):
        """[(message type, body bytes)] answering one request (NLM_F_ACK added to
        flags); an error answer raises NetlinkError."""
        seq = self.next_seq()
        self._send(request(kind, flags | _genl.NLM_F_REQUEST | _genl.NLM_F_ACK, seq, body))
        replies = []
        while True:
            length = self._receive()
            for got_kind, flags, got, offset, end in _genl.iter_messages(self.buffer, length):
                if got != seq:
                    continue
                if got_kind == _genl.NLMSG_ERROR:
                    code, text = _genl.parse_error(self.buffer, offset, end, flags)
                    if code:
                        raise NetlinkError(code, text)
                    return replies
                replies.append((got_kind, bytes(self.buffer[offset:end])))

    def batch(self, requests):
        """Send [(type, flags, body)] in as few send() calls as fit BATCH_BYTES; only
        the last message of a send asks for an ACK. Returns [(index, errno, text)] of
        the refused requests; every other request was applied. Stops after the first
        send in which something failed (later requests not sent: indexes from
        len(requests) - unsent on are missing from both lists): callers raise anyway.
        """
        index, total, errors = 0, len(requests), []
        while index < total:
            parts, seqs, size = [], {}, 0
            while index < total:
                kind, flags, body = requests[index]
                length = _HEADER.size + len(body)
                if parts and size + length > _genl.BATCH_BYTES:
                    break
                seq = self.next_seq()
                seqs[seq] = index
                parts.append((kind, flags, seq, body))
                size += length
                index += 1
            last = parts[-1][2]
            data = b''.join(request(kind, flags | _genl.NLM_F_REQUEST | (_genl.NLM_F_ACK if seq == last else 0),
                                    seq, body) for kind, flags, seq, body in parts)
            self._send(data)
            errors = self._collect(seqs, last)
            if errors:
                return errors
        return errors

    def _collect(self, seqs, last):
        errors = []
        while True:
            length = self._receive()
            for kind, flags, seq, offset, end in _genl.iter_messages(self.buffer, length):
                if kind != _genl.NLMSG_ERROR or seq not in seqs:
                    continue
                code, text = _genl.parse_error(self.buffer, offset, end, flags)
                if code:
                    errors.append((seqs[seq], code, text))
                if seq == last:
                    return sorted(errors)
