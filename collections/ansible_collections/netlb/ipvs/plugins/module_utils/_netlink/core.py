# -*- coding: utf-8 -*-
# Copyright (c) netlb.ipvs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Netlink itself: framing, attributes, errors and the socket every protocol shares.

PRIVATE module_utils of netlb.ipvs: no compatibility promise outside this collection.

Stdlib only (struct, socket). Knows netlink headers, attributes, NLMSG_ERROR answers
and how to send and receive; knows nothing about IPVS, links or nf_tables. Constants
come from <linux/netlink.h>. generic.py (generic netlink: IPVS), route.py (rtnetlink)
and netfilter.py (nfnetlink) build on it.

How a batch works: many requests go out in one send(); only the last asks for an ACK.
The kernel handles every message of a send in order, keeps going after a failure and
answers each failure with an NLMSG_ERROR carrying the failed request's sequence
number, so once the ACK of the last request arrives we know exactly which requests
failed and that all the others were applied.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLMSGERR_ATTR_MSG = 1

NLA_TYPE_MASK = 0x3fff  # drops NLA_F_NESTED and NLA_F_NET_BYTEORDER

NLMSGHDR = struct.Struct('=IHHII')  # len, type, flags, seq, pid
_NLATTR = struct.Struct('=HH')  # len, type
_U16 = struct.Struct('=H')
_U32 = struct.Struct('=I')
_BE16 = struct.Struct('>H')
_ERRNO = struct.Struct('=i')

# Sizes chosen so a batch in which every request fails still has room for all its
# error messages in the receive buffer (each costs the kernel ~1 KiB of truesize).
RECV_BUFFER = 256 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024
BATCH_BYTES = 64 * 1024
TIMEOUT = 120.0


class NetlinkError(Exception):
    """The kernel answered a request with an error (errno > 0). index: which of the
    requests of a dumps() call, when there."""

    def __init__(self, code, text='', index=None):
        self.errno = code
        self.text = text
        self.index = index
        message = os.strerror(code)
        if text:
            message = '%s (%s)' % (message, text)
        super(NetlinkError, self).__init__(message)


class ProtocolError(Exception):
    """The socket broke or the kernel said something we cannot read."""


# ---------------------------------------------------------------------------
# Attributes


def _align(length):
    return (length + 3) & ~3


def attr(kind, payload):
    """One attribute: header, payload, padding to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b'\0' * (_align(length) - length)


def nested(kind, *attrs):
    # No NLA_F_NESTED bit: old kernels' IPVS parser does not expect it.
    return attr(kind, b''.join(attrs))


def u8(kind, value):
    return attr(kind, struct.pack('=B', value))


def u16(kind, value):
    return attr(kind, _U16.pack(value))


def u32(kind, value):
    return attr(kind, _U32.pack(value))


def be16(kind, value):
    return attr(kind, _BE16.pack(value))


def string(kind, value):
    return attr(kind, value.encode('ascii') + b'\0')


def parse_attrs(data, offset=0, end=None):
    """dict type -> payload bytes of the attributes in data[offset:end] (last wins)."""
    if end is None:
        end = len(data)
    result = {}
    unpack = _NLATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4 or offset + length > end:
            raise ProtocolError('bad attribute length %d at offset %d' % (length, offset))
        result[kind & NLA_TYPE_MASK] = bytes(data[offset + 4:offset + length])
        offset += _align(length)
    return result


def get_u8(attrs, kind, default=0):
    value = attrs.get(kind)
    return value[0] if value else default


def get_u16(attrs, kind, default=0):
    value = attrs.get(kind)
    return _U16.unpack(value[:2])[0] if value else default


def get_u32(attrs, kind, default=0):
    value = attrs.get(kind)
    return _U32.unpack(value[:4])[0] if value else default


def get_be16(attrs, kind, default=0):
    value = attrs.get(kind)
    return _BE16.unpack(value[:2])[0] if value else default


def get_string(attrs, kind, default=''):
    value = attrs.get(kind)
    return value.split(b'\0', 1)[0].decode('ascii', 'replace') if value is not None else default


# ---------------------------------------------------------------------------
# Messages


def request(kind, flags, seq, body):
    """One netlink message: nlmsghdr + body (a protocol's fixed header + attributes)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def iter_messages(data, length):
    """Yield (type, flags, seq, offset, end) for each netlink message in data[:length];
    offset is where the message body starts (after nlmsghdr)."""
    offset = 0
    unpack = NLMSGHDR.unpack_from
    while offset + NLMSGHDR.size <= length:
        size, kind, flags, seq, _pid = unpack(data, offset)
        if size < NLMSGHDR.size or offset + size > length:
            raise ProtocolError('bad message length %d at offset %d' % (size, offset))
        yield kind, flags, seq, offset + NLMSGHDR.size, offset + size
        offset += _align(size)


def parse_error(data, offset, end, flags):
    """(errno, extack text) of an NLMSG_ERROR body; errno 0 is an ACK."""
    code = -_ERRNO.unpack_from(data, offset)[0]
    text = ''
    if flags & NLM_F_ACK_TLVS:
        # The original request follows: its header only when capped (NETLINK_CAP_ACK).
        inner = NLMSGHDR.unpack_from(data, offset + 4)[0]
        tlvs = offset + 4 + (NLMSGHDR.size if flags & NLM_F_CAPPED else _align(inner))
        if tlvs < end:
            text = get_string(parse_attrs(data, tlvs, end), NLMSGERR_ATTR_MSG)
    return code, text


# ---------------------------------------------------------------------------
# Socket


def open_socket(protocol, name):
    """A bound netlink socket of protocol (named name in errors) with big buffers and
    compact ACKs."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    except (AttributeError, OSError) as exc:
        raise ProtocolError('cannot open a %s netlink socket: %s' % (name, exc))
    sock.bind((0, 0))
    for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
    for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
        try:
            sock.setsockopt(SOL_NETLINK, option, 1)
        except OSError:
            pass  # older kernels: full ACKs, no extended messages
    sock.settimeout(TIMEOUT)
    return sock


def receive_error(exc):
    """The ProtocolError for a failed receive (socket.timeout is an OSError)."""
    if isinstance(exc, socket.timeout):
        return ProtocolError('no answer from the kernel within %d s' % TIMEOUT)
    if exc.errno == errno.ENOBUFS:
        return ProtocolError('netlink receive buffer overflowed: kernel answers were lost')
    return ProtocolError('netlink receive failed: %s' % exc)


class NetlinkSocket:
    """One netlink socket: sequence numbers, whole sends, receives into one buffer.
    generic.GenlSocket (IPVS over generic netlink) and RequestSocket build on it; a
    subclass names its protocol.

    sock is anything with send(), recv_into() and close() (tests pass a fake kernel).
    """

    protocol, protocol_name = None, 'abstract'

    def __init__(self, sock=None):
        self.sock = sock if sock is not None else open_socket(self.protocol, self.protocol_name)
        self.buffer = bytearray(RECV_BUFFER)
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xffffffff or 1
        return self.seq

    def _send(self, data):
        try:
            sent = self.sock.send(data)
        except OSError as exc:
            raise ProtocolError('netlink send failed: %s' % exc)
        if sent != len(data):
            raise ProtocolError('netlink send was cut short (%d of %d bytes)' % (sent, len(data)))

    def _receive(self):
        """One datagram into the shared buffer; returns its length."""
        try:
            length = self.sock.recv_into(self.buffer, len(self.buffer), socket.MSG_TRUNC)
        except OSError as exc:
            raise receive_error(exc)
        if length > len(self.buffer):
            raise ProtocolError('netlink message of %d bytes does not fit the buffer' % length)
        return length

    def _collect(self, seqs, last):
        """Read answers until the last request of a batch is acknowledged (or refused):
        [(index, errno, text)] of the refused ones, seqs mapping seq -> index."""
        errors = []
        while True:
            length = self._receive()
            for kind, flags, seq, offset, end in iter_messages(self.buffer, length):
                if kind != NLMSG_ERROR or seq not in seqs:
                    continue
                code, text = parse_error(self.buffer, offset, end, flags)
                if code:
                    errors.append((seqs[seq], code, text))
                if seq == last:
                    return sorted(errors)


class RequestSocket(NetlinkSocket):
    """Dumps, single requests and batches of messages made of nlmsghdr + a body (a fixed
    header and attributes), as rtnetlink and nfnetlink take them: route.RtnlSocket and
    netfilter.NfnlSocket name the protocol.
    """

    def _answers(self, seq):
        """(type, flags, offset, end) of each message answering seq, in the shared buffer
        as its datagram arrives (use each before asking for the next)."""
        while True:
            length = self._receive()
            for got_kind, flags, got, offset, end in iter_messages(self.buffer, length):
                if got == seq:
                    yield got_kind, flags, offset, end

    def dump(self, kind, body):
        """[(message type, body bytes)] of a dump request (NLM_F_DUMP)."""
        seq = self.next_seq()
        self._send(request(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
        replies = []
        for got_kind, flags, offset, end in self._answers(seq):
            if got_kind == NLMSG_DONE:
                return replies
            if got_kind == NLMSG_ERROR:
                code, text = parse_error(self.buffer, offset, end, flags)
                raise NetlinkError(code or errno.EIO, text)
            if flags & NLM_F_DUMP_INTR:
                raise NetlinkError(errno.EINTR, 'the table changed during the dump')
            replies.append((got_kind, bytes(self.buffer[offset:end])))

    def get(self, kind, body, flags=0):
        """[(message type, body bytes)] answering one request (NLM_F_ACK added to
        flags); an error answer raises NetlinkError."""
        seq = self.next_seq()
        self._send(request(kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body))
        replies = []
        for got_kind, flags, offset, end in self._answers(seq):
            if got_kind == NLMSG_ERROR:
                code, text = parse_error(self.buffer, offset, end, flags)
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
                length = NLMSGHDR.size + len(body)
                if parts and size + length > BATCH_BYTES:
                    break
                seq = self.next_seq()
                seqs[seq] = index
                parts.append((kind, flags, seq, body))
                size += length
                index += 1
            last = parts[-1][2]
            data = b''.join(request(kind, flags | NLM_F_REQUEST | (NLM_F_ACK if seq == last else 0), seq, body)
                            for kind, flags, seq, body in parts)
            self._send(data)
            errors = self._collect(seqs, last)
            if errors:
                return errors
        return errors
